using System.Globalization;
using Microsoft.DotNet.Interactive;

namespace DreamBooth.Notebooks;

/// <summary>
/// Notebook inputs that always have a default. Interactively they prompt (.NET Interactive's <c>Kernel.GetInputAsync</c>;
/// an empty answer keeps the default); headless they return the default at once, so a notebook runs top to bottom in
/// CI with nobody typing. Headless means: <c>DREAMBOOTH_HEADLESS=1</c> (set by the test runner), <c>CI=true</c>, or no
/// notebook kernel at all (plain C#).
/// </summary>
public static class Inputs
{
    /// <summary>The environment variable that forces headless mode.</summary>
    public const string HeadlessVariable = "DREAMBOOTH_HEADLESS";

    /// <summary>The environment variable that overrides the default model folder.</summary>
    public const string ModelVariable = "DREAMBOOTH_MODEL";

    /// <summary>The embedded tiny model, relative to the notebooks/ folder.</summary>
    public const string EmbeddedModel = "../data/models/tiny-sd";

    /// <summary>True when prompts must not wait for a person (see the class remarks).</summary>
    public static bool IsHeadless => IsSet(Environment.GetEnvironmentVariable(HeadlessVariable))
        || IsSet(Environment.GetEnvironmentVariable("CI"))
        || KernelInvocationContext.Current is null;

    /// <summary>The notebooks' default model: <c>$DREAMBOOTH_MODEL</c> if set, else the embedded tiny model.</summary>
    public static string DefaultModel => Environment.GetEnvironmentVariable(ModelVariable) is { Length: > 0 } m ? m : EmbeddedModel;

    /// <summary>Where notebooks keep sessions: <c>$DREAMBOOTH_SESSIONS</c> if set, else <c>../sessions</c> (git-ignored).</summary>
    public static string DefaultSessionsFolder => Environment.GetEnvironmentVariable("DREAMBOOTH_SESSIONS") is { Length: > 0 } s ? s : "../sessions";

    /// <summary>Where notebooks save pictures: <c>$DREAMBOOTH_OUTPUTS</c> if set, else <c>../outputs</c> (git-ignored).</summary>
    public static string DefaultOutputsFolder => Environment.GetEnvironmentVariable("DREAMBOOTH_OUTPUTS") is { Length: > 0 } s ? s : "../outputs";

    static bool IsSet(string? v) => v is not null && (v == "1" || v.Equals("true", StringComparison.OrdinalIgnoreCase) || v.Equals("yes", StringComparison.OrdinalIgnoreCase));

    /// <summary>Asks for text; returns <paramref name="defaultValue"/> headless or when the answer is empty.</summary>
    public static async Task<string> Text(string prompt, string defaultValue)
    {
        ArgumentNullException.ThrowIfNull(defaultValue);
        var answer = await AskAsync(prompt, defaultValue.Length > 60 ? defaultValue[..57] + "…" : defaultValue).ConfigureAwait(false);
        return string.IsNullOrWhiteSpace(answer) ? defaultValue : answer.Trim();
    }

    /// <summary>Asks for a whole number in [<paramref name="min"/>, <paramref name="max"/>]; a bad answer keeps the default (and says so).</summary>
    public static async Task<int> Int(string prompt, int defaultValue, int min = int.MinValue, int max = int.MaxValue)
    {
        var answer = await AskAsync(prompt, defaultValue.ToString(CultureInfo.InvariantCulture)).ConfigureAwait(false);
        if (string.IsNullOrWhiteSpace(answer)) return defaultValue;
        if (int.TryParse(answer.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max) return v;
        Warn($"'{answer}' is not a whole number between {min} and {max}; using {defaultValue}.");
        return defaultValue;
    }

    /// <summary>Asks for a number; a bad answer keeps the default (and says so).</summary>
    public static async Task<double> Number(string prompt, double defaultValue, double min = double.MinValue, double max = double.MaxValue)
    {
        var answer = await AskAsync(prompt, defaultValue.ToString(CultureInfo.InvariantCulture)).ConfigureAwait(false);
        if (string.IsNullOrWhiteSpace(answer)) return defaultValue;
        if (double.TryParse(answer.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v >= min && v <= max) return v;
        Warn($"'{answer}' is not a number between {min} and {max}; using {defaultValue}.");
        return defaultValue;
    }

    /// <summary>Asks for one of <paramref name="choices"/> (case-insensitive); anything else keeps the default.</summary>
    public static async Task<string> Choice(string prompt, IReadOnlyList<string> choices, string defaultValue)
    {
        ArgumentNullException.ThrowIfNull(choices);
        if (!choices.Contains(defaultValue, StringComparer.OrdinalIgnoreCase))
            throw new ArgumentException($"the default '{defaultValue}' is not one of the choices ({string.Join(", ", choices)}).", nameof(defaultValue));
        var answer = await AskAsync($"{prompt} ({string.Join(" / ", choices)})", defaultValue).ConfigureAwait(false);
        if (string.IsNullOrWhiteSpace(answer)) return defaultValue;
        var match = choices.FirstOrDefault(c => c.Equals(answer.Trim(), StringComparison.OrdinalIgnoreCase));
        if (match != null) return match;
        Warn($"'{answer}' is not one of {string.Join(", ", choices)}; using {defaultValue}.");
        return defaultValue;
    }

    /// <summary>Asks for an enum value by name (e.g. a <c>Sampler</c>).</summary>
    public static async Task<T> Choice<T>(string prompt, T defaultValue) where T : struct, Enum
    {
        var names = Enum.GetNames<T>();
        var picked = await Choice(prompt, names, defaultValue.ToString()).ConfigureAwait(false);
        return Enum.Parse<T>(picked, ignoreCase: true);
    }

    /// <summary>Asks yes/no.</summary>
    public static async Task<bool> YesNo(string prompt, bool defaultValue)
    {
        var picked = await Choice(prompt, ["yes", "no"], defaultValue ? "yes" : "no").ConfigureAwait(false);
        return picked == "yes";
    }

    /// <summary>
    /// Asks for a secret (a Hugging Face token) with a password box: it is never echoed, never part of the notebook's
    /// outputs, and never written anywhere by this method. Headless (or when the answer is empty) it comes from the
    /// environment variable <paramref name="environmentVariable"/>; null when there is none. Use
    /// <c>secret?.GetClearTextPassword()</c> only where the token is needed (e.g. <c>HubOptions.Token</c>).
    /// </summary>
    public static async Task<PasswordString?> Password(string prompt, string? environmentVariable = "HF_TOKEN")
    {
        PasswordString? fromEnv = environmentVariable != null && Environment.GetEnvironmentVariable(environmentVariable) is { Length: > 0 } v
            ? new PasswordString(v.Trim()) : null;
        if (IsHeadless) return fromEnv;
        var answer = await Kernel.GetPasswordAsync(prompt).ConfigureAwait(false);
        return answer is null || string.IsNullOrWhiteSpace(answer.GetClearTextPassword()) ? fromEnv : answer;
    }

    static async Task<string?> AskAsync(string prompt, string shownDefault)
    {
        if (IsHeadless) return null;
        return await Kernel.GetInputAsync($"{prompt} [{shownDefault}]").ConfigureAwait(false);
    }

    static void Warn(string message)
    {
        if (KernelInvocationContext.Current is not null)
            $"<div style=\"color:#b26a00\">{NotebookHtml.Enc(message)}</div>".DisplayAs("text/html");
        else Console.Error.WriteLine(message);
    }
}
