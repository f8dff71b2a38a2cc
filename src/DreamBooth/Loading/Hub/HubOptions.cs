using System.Text;

namespace DreamBooth.Loading.Hub;

/// <summary>
/// Settings for <see cref="HubClient"/>. Defaults follow huggingface_hub's environment variables
/// (<c>HF_ENDPOINT</c>, <c>HF_HUB_CACHE</c>, <c>HF_HOME</c>, <c>HF_HUB_OFFLINE</c>), so a cache shared with Python is reused.
/// <see cref="Token"/> is never printed: <see cref="ToString"/> shows it as <c>***</c>.
/// </summary>
public sealed record HubOptions
{
    /// <summary>The public hub.</summary>
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>Hub base URL (default <c>$HF_ENDPOINT</c>, else https://huggingface.co). Tests point it to a local server.</summary>
    public string Endpoint { get; init; } = HubEnvironment.Endpoint(Environment.GetEnvironmentVariable);

    /// <summary>Cache root (default <c>$HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>, else <c>~/.cache/huggingface/hub</c>).</summary>
    public string CacheDir { get; init; } = HubEnvironment.CacheDir(Environment.GetEnvironmentVariable);

    /// <summary>Access token for gated or private repositories. Null: <c>HF_TOKEN</c>, else the token file (see <see cref="HubToken"/>).</summary>
    public string? Token { get; init; }

    /// <summary>
    /// When <see cref="Token"/> is null, look for <c>HF_TOKEN</c> and the token file (default true); false forces
    /// anonymous access whatever this machine has stored.
    /// </summary>
    public bool UseStoredToken { get; init; } = true;

    /// <summary>Use only the local cache, never the network (default: <c>HF_HUB_OFFLINE=1</c>).</summary>
    public bool Offline { get; init; } = HubEnvironment.Offline(Environment.GetEnvironmentVariable);

    /// <summary>Longest wait for response headers, and for each chunk of a body, before the attempt counts as dropped.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How many times a dropped or failed request is retried (downloads resume with an HTTP Range request).</summary>
    public int MaxRetries { get; init; } = 5;

    /// <summary>First back-off delay between retries; it doubles each retry, capped at 30 s.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad option and the fix.</summary>
    public void Validate()
    {
        if (!Uri.TryCreate(Endpoint, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw new ArgumentException($"HubOptions.Endpoint '{Endpoint}' is not an absolute http(s) URL; use e.g. {DefaultEndpoint}.", nameof(Endpoint));
        if (!string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment))
            throw new ArgumentException($"HubOptions.Endpoint '{Endpoint}' must not have a query or fragment; use just the base URL.", nameof(Endpoint));
        if (string.IsNullOrWhiteSpace(CacheDir))
            throw new ArgumentException("HubOptions.CacheDir is empty; give a folder (or leave it unset for ~/.cache/huggingface/hub).", nameof(CacheDir));
        if (Timeout <= TimeSpan.Zero)
            throw new ArgumentException($"HubOptions.Timeout must be positive (got {Timeout}); e.g. 30 s.", nameof(Timeout));
        if (MaxRetries is < 0 or > 100)
            throw new ArgumentException($"HubOptions.MaxRetries must be 0..100 (got {MaxRetries}); e.g. 5.", nameof(MaxRetries));
        if (RetryDelay < TimeSpan.Zero || RetryDelay > TimeSpan.FromMinutes(5))
            throw new ArgumentException($"HubOptions.RetryDelay must be 0..5 min (got {RetryDelay}); e.g. 1 s.", nameof(RetryDelay));
        if (Token is not null && (Token.Length == 0 || Token.Any(c => char.IsWhiteSpace(c) || char.IsControl(c))))
            throw new ArgumentException("HubOptions.Token is empty or contains whitespace; pass the token exactly as shown on the hub (hf_...).", nameof(Token));
    }

    // Records print every property in ToString(); the token must never be printed.
    bool PrintMembers(StringBuilder b)
    {
        b.Append($"Endpoint = {Endpoint}, CacheDir = {CacheDir}, Token = {(Token is null ? "null" : "***")}, Offline = {Offline}, ");
        b.Append($"Timeout = {Timeout}, MaxRetries = {MaxRetries}, RetryDelay = {RetryDelay}");
        return true;
    }
}

/// <summary>Environment-variable defaults, as huggingface_hub's <c>constants.py</c> defines them.</summary>
public static class HubEnvironment
{
    /// <summary><c>$HF_ENDPOINT</c> or https://huggingface.co.</summary>
    public static string Endpoint(Func<string, string?> getEnv) =>
        NonEmpty(getEnv("HF_ENDPOINT"))?.TrimEnd('/') ?? HubOptions.DefaultEndpoint;

    /// <summary><c>$HF_HOME</c>, else <c>$XDG_CACHE_HOME/huggingface</c>, else <c>~/.cache/huggingface</c>.</summary>
    public static string HfHome(Func<string, string?> getEnv)
    {
        if (NonEmpty(getEnv("HF_HOME")) is { } home) return ExpandHome(home);
        var xdg = NonEmpty(getEnv("XDG_CACHE_HOME"));
        var cache = xdg is null
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache")
            : ExpandHome(xdg);
        return Path.Combine(cache, "huggingface");
    }

    /// <summary><c>$HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>.</summary>
    public static string CacheDir(Func<string, string?> getEnv) =>
        NonEmpty(getEnv("HF_HUB_CACHE")) is { } c ? ExpandHome(c) : Path.Combine(HfHome(getEnv), "hub");

    /// <summary><c>HF_HUB_OFFLINE</c> is 1/true/yes/on (case-insensitive).</summary>
    public static bool Offline(Func<string, string?> getEnv) =>
        getEnv("HF_HUB_OFFLINE")?.Trim().ToUpperInvariant() is "1" or "TRUE" or "YES" or "ON";

    /// <summary><c>$HF_TOKEN_PATH</c>, else <c>$HF_HOME/token</c>.</summary>
    public static string TokenPath(Func<string, string?> getEnv) =>
        NonEmpty(getEnv("HF_TOKEN_PATH")) is { } p ? ExpandHome(p) : Path.Combine(HfHome(getEnv), "token");

    static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s.Trim();

    static string ExpandHome(string p) =>
        p == "~" || p.StartsWith("~/", StringComparison.Ordinal)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), p.Length > 2 ? p[2..] : "")
            : p;
}

/// <summary>Where the access token comes from: the explicit argument, else <c>HF_TOKEN</c>, else the token file
/// written by <c>huggingface-cli login</c> (<c>$HF_TOKEN_PATH</c>, else <c>$HF_HOME/token</c>, i.e. ~/.cache/huggingface/token).</summary>
public static class HubToken
{
    /// <summary>The token to send, or null for anonymous access. Never logs or returns anything but the token itself.</summary>
    public static string? Resolve(string? explicitToken, Func<string, string?>? getEnv = null)
    {
        getEnv ??= Environment.GetEnvironmentVariable;
        if (!string.IsNullOrWhiteSpace(explicitToken)) return explicitToken.Trim();
        if (getEnv("HF_TOKEN") is { } env && !string.IsNullOrWhiteSpace(env)) return env.Trim();
        var path = HubEnvironment.TokenPath(getEnv);
        try
        {
            if (File.Exists(path))
            {
                var t = File.ReadAllText(path).Trim();
                return t.Length == 0 ? null : t;
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }
}
