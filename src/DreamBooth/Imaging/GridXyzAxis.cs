using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace DreamBooth.Imaging;

/// <summary>What an X/Y/Z plot axis varies.</summary>
public enum XyzAxisKind
{
    /// <summary>Seed (whole numbers; -1 means random).</summary>
    Seed,
    /// <summary>Sampler name as A1111 prints it.</summary>
    Sampler,
    /// <summary>Sampling steps (whole numbers ≥ 1).</summary>
    Steps,
    /// <summary>CFG scale (numbers).</summary>
    CfgScale,
    /// <summary>Prompt search/replace: the first value is the search term, each value replaces it in turn.</summary>
    PromptSearchReplace,
    /// <summary>Negative-prompt preset name (see <see cref="NegativePromptPresets"/>).</summary>
    NegativePreset,
    /// <summary>Checkpoint (model) name or path.</summary>
    Checkpoint,
}

/// <summary>
/// One axis of an X/Y/Z plot: its kind and its values, parsed like AUTOMATIC1111's scripts/xyz_grid.py. Values are
/// comma-separated (CSV: double quotes protect commas). Numeric axes also accept ranges: "1-5" (inclusive),
/// "1-10 (+2)" (step), "1-10 [4]" (count, evenly spaced); floats likewise ("5-8 (+0.5)", "5-8 [4]").
/// Differences from A1111: descending ranges are inclusive ("5-1" gives 5,4,3,2,1; A1111 gives nothing, and
/// "5-1 (-1)" stops at 3 there), and a zero step is an error. Only parsing lives here; generation is elsewhere.
/// </summary>
public sealed partial record XyzAxis
{
    XyzAxis(XyzAxisKind kind, IReadOnlyList<string> values) => (Kind, Values) = (kind, values);

    /// <summary>The axis kind.</summary>
    public XyzAxisKind Kind { get; }

    /// <summary>The expanded values as text (ranges expanded), in order. For prompt S/R the first is the search term.</summary>
    public IReadOnlyList<string> Values { get; }

    /// <summary>The axis name as A1111 shows it ("Seed", "Sampler", "Steps", "CFG Scale", "Prompt S/R", ...).</summary>
    public string Name => NameOf(Kind);

    /// <summary>Display name of an axis kind.</summary>
    public static string NameOf(XyzAxisKind kind) => kind switch
    {
        XyzAxisKind.Seed => "Seed",
        XyzAxisKind.Sampler => "Sampler",
        XyzAxisKind.Steps => "Steps",
        XyzAxisKind.CfgScale => "CFG Scale",
        XyzAxisKind.PromptSearchReplace => "Prompt S/R",
        XyzAxisKind.NegativePreset => "Negative preset",
        XyzAxisKind.Checkpoint => "Checkpoint name",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown X/Y/Z axis kind."),
    };

    /// <summary>
    /// Parses the values text of an axis. For Sampler / NegativePreset / Checkpoint, <paramref name="knownChoices"/>
    /// (optional) lists the valid names; matching is case-insensitive and yields the canonical spelling.
    /// Throws <see cref="FormatException"/> naming the axis, the bad value and the accepted forms.
    /// </summary>
    public static XyzAxis Parse(XyzAxisKind kind, string valuesText, IReadOnlyCollection<string>? knownChoices = null)
    {
        ArgumentNullException.ThrowIfNull(valuesText);
        var name = NameOf(kind);
        var items = SplitCsv(valuesText, name).Select(v => v.Trim()).Where(v => v.Length > 0).ToList();
        if (items.Count == 0)
            throw new FormatException($"X/Y/Z axis \"{name}\": no values given. Write values separated by commas, e.g. {Example(kind)}.");

        List<string> values = kind switch
        {
            XyzAxisKind.Seed => items.SelectMany(v => ExpandInt(v, name)).Select(Inv).ToList(),
            XyzAxisKind.Steps => items.SelectMany(v => ExpandInt(v, name)).Select(s => s >= 1 && s <= 10000
                ? Inv(s)
                : throw new FormatException($"X/Y/Z axis \"{name}\": {s} steps is outside 1..10000.")).ToList(),
            XyzAxisKind.CfgScale => items.SelectMany(v => ExpandFloat(v, name)).Select(PyFloat).ToList(),
            XyzAxisKind.PromptSearchReplace => items,
            _ => items.Select(v => MatchChoice(v, knownChoices, name)).ToList(),
        };
        if (values.Count > 10000)
            throw new FormatException($"X/Y/Z axis \"{name}\": {values.Count} values is too many for a grid; use a larger step.");
        return new XyzAxis(kind, values);
    }

    /// <summary>The values as whole numbers (Seed, Steps axes).</summary>
    public IReadOnlyList<long> IntValues() =>
        Kind is XyzAxisKind.Seed or XyzAxisKind.Steps
            ? Values.Select(v => long.Parse(v, CultureInfo.InvariantCulture)).ToList()
            : throw new InvalidOperationException($"X/Y/Z axis \"{Name}\" does not hold whole numbers.");

    /// <summary>The values as numbers (CFG scale, Seed, Steps axes).</summary>
    public IReadOnlyList<double> FloatValues() =>
        Kind is XyzAxisKind.CfgScale or XyzAxisKind.Seed or XyzAxisKind.Steps
            ? Values.Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToList()
            : throw new InvalidOperationException($"X/Y/Z axis \"{Name}\" does not hold numbers.");

    /// <summary>Grid labels like A1111: "Name: value" for most axes, the bare value for prompt S/R,
    /// the file name without folder for checkpoints.</summary>
    public IReadOnlyList<string> Labels() => Kind switch
    {
        XyzAxisKind.PromptSearchReplace => [.. Values],
        XyzAxisKind.Checkpoint => Values.Select(v => $"{Name}: {CheckpointTitle(v)}").ToList(),
        _ => Values.Select(v => $"{Name}: {v}").ToList(),
    };

    static string CheckpointTitle(string v)
    {
        var f = Path.GetFileName(v.Replace('\\', '/').TrimEnd('/'));
        return f.Length > 0 ? f : v;
    }

    /// <summary>Prompt S/R: the search term (the first value).</summary>
    public string SearchTerm => Kind == XyzAxisKind.PromptSearchReplace
        ? Values[0]
        : throw new InvalidOperationException($"X/Y/Z axis \"{Name}\" is not a prompt search/replace axis.");

    /// <summary>
    /// Prompt S/R: checks that the search term occurs in the prompt or negative prompt (A1111 refuses otherwise).
    /// </summary>
    public void ValidateSearchTerm(string prompt, string negativePrompt)
    {
        var term = SearchTerm;
        if (!prompt.Contains(term, StringComparison.Ordinal) && !negativePrompt.Contains(term, StringComparison.Ordinal))
            throw new FormatException(
                $"X/Y/Z axis \"{Name}\": the search term \"{term}\" (the first value) occurs in neither the prompt nor the negative prompt. " +
                "Put the text to replace first, e.g. \"dog, cat, bird\" for a prompt containing \"dog\".");
    }

    /// <summary>Prompt S/R: the prompt and negative prompt with the search term replaced by value <paramref name="index"/>.</summary>
    public (string Prompt, string NegativePrompt) ApplySearchReplace(string prompt, string negativePrompt, int index)
    {
        var term = SearchTerm;
        if ((uint)index >= (uint)Values.Count)
            throw new ArgumentOutOfRangeException(nameof(index), index, $"X/Y/Z axis \"{Name}\" has {Values.Count} values.");
        return (prompt.Replace(term, Values[index], StringComparison.Ordinal), negativePrompt.Replace(term, Values[index], StringComparison.Ordinal));
    }

    static string Example(XyzAxisKind kind) => kind switch
    {
        XyzAxisKind.Seed => "\"1, 2, 3\" or \"100-104\"",
        XyzAxisKind.Steps => "\"10, 20, 30\" or \"10-40 (+10)\"",
        XyzAxisKind.CfgScale => "\"5, 7.5, 10\" or \"5-9 (+1)\"",
        XyzAxisKind.PromptSearchReplace => "\"dog, cat, bird\" (the first value is searched in the prompt)",
        XyzAxisKind.Sampler => "\"Euler a, DDIM\"",
        XyzAxisKind.NegativePreset => "\"none, sd21-watermark-anatomy\"",
        _ => "\"model-a, model-b\"",
    };

    static string MatchChoice(string value, IReadOnlyCollection<string>? choices, string axis)
    {
        if (choices == null) return value;
        foreach (var c in choices)
            if (string.Equals(c, value, StringComparison.OrdinalIgnoreCase)) return c;
        throw new FormatException($"X/Y/Z axis \"{axis}\": unknown value \"{value}\". Valid values: {string.Join(", ", choices)}.");
    }

    static IEnumerable<long> ExpandInt(string v, string axis)
    {
        var m = IntRangeRegex().Match(v);
        if (m.Success)
        {
            long start = ParseSignedInt(m.Groups[1].Value, v, axis), end = ParseSignedInt(m.Groups[2].Value, v, axis);
            if (m.Groups[4].Success)
            {
                int count = int.Parse(m.Groups[4].Value, CultureInfo.InvariantCulture);
                if (count < 1) throw new FormatException($"X/Y/Z axis \"{axis}\": \"{v}\" asks for {count} values; the count in [..] must be at least 1.");
                // np.linspace(start, end, num) then int() (truncation toward zero)
                return Enumerable.Range(0, count).Select(i => count == 1
                    ? start
                    : (long)Math.Truncate(start + (end - start) * (double)i / (count - 1))).ToList();
            }
            long step = m.Groups[3].Success ? ParseSignedInt(m.Groups[3].Value, v, axis) : (end >= start ? 1 : -1);
            if (step == 0) throw new FormatException($"X/Y/Z axis \"{axis}\": \"{v}\" has a step of 0; use e.g. (+1).");
            if ((end - start) * step < 0)
                throw new FormatException($"X/Y/Z axis \"{axis}\": \"{v}\" never reaches {end} with step {step}; flip the step's sign.");
            long n = (end - start) / step + 1;
            if (n > 10000) throw new FormatException($"X/Y/Z axis \"{axis}\": \"{v}\" expands to {n} values, too many for a grid.");
            return Enumerable.Range(0, (int)n).Select(i => start + i * step).ToList();
        }
        if (long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var single))
            return [single];
        throw new FormatException(
            $"X/Y/Z axis \"{axis}\": \"{v}\" is not a whole number or a range. Accepted: 7 | 1-5 | 1-10 (+2) | 1-10 [4].");
    }

    static IEnumerable<double> ExpandFloat(string v, string axis)
    {
        var m = FloatRangeRegex().Match(v);
        if (m.Success)
        {
            double start = ParseSignedFloat(m.Groups[1].Value), end = ParseSignedFloat(m.Groups[2].Value);
            if (m.Groups[4].Success)
            {
                if (!double.TryParse(m.Groups[4].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var cd) || cd < 1 || cd != Math.Floor(cd))
                    throw new FormatException($"X/Y/Z axis \"{axis}\": \"{v}\": the count in [..] must be a whole number ≥ 1.");
                int count = (int)cd;
                return Enumerable.Range(0, count).Select(i => count == 1 ? start : Math.Round(start + (end - start) * i / (count - 1), 10)).ToList();
            }
            double step = m.Groups[3].Success ? ParseSignedFloat(m.Groups[3].Value) : (end >= start ? 1 : -1);
            if (step == 0) throw new FormatException($"X/Y/Z axis \"{axis}\": \"{v}\" has a step of 0; use e.g. (+0.5).");
            if ((end - start) * step < 0)
                throw new FormatException($"X/Y/Z axis \"{axis}\": \"{v}\" never reaches {PyFloat(end)} with step {PyFloat(step)}; flip the step's sign.");
            double nd = Math.Floor((end - start) / step + 1e-9) + 1;
            if (nd > 10000) throw new FormatException($"X/Y/Z axis \"{axis}\": \"{v}\" expands to {nd} values, too many for a grid.");
            return Enumerable.Range(0, (int)nd).Select(i => Math.Round(start + i * step, 10)).ToList();
        }
        if (double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var single) && double.IsFinite(single))
            return [single];
        throw new FormatException(
            $"X/Y/Z axis \"{axis}\": \"{v}\" is not a number or a range. Accepted: 7.5 | 5-9 | 5-9 (+0.5) | 5-9 [5].");
    }

    static long ParseSignedInt(string s, string v, string axis) =>
        long.TryParse(s.Replace(" ", "").Replace("\t", ""), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var x)
            ? x
            : throw new FormatException($"X/Y/Z axis \"{axis}\": \"{v}\" has a number that is too large.");

    static double ParseSignedFloat(string s) =>
        double.Parse(s.Replace(" ", "").Replace("\t", ""), NumberStyles.Float, CultureInfo.InvariantCulture);

    static string Inv(long v) => v.ToString(CultureInfo.InvariantCulture);

    /// <summary>Python's str(float) for ordinary values: "7.0", "7.5", "0.1".</summary>
    internal static string PyFloat(double d)
    {
        var s = d.ToString("R", CultureInfo.InvariantCulture);
        return s.Contains('.') || s.Contains('E') || !double.IsFinite(d) ? s : s + ".0";
    }

    /// <summary>Splits like Python's csv.reader(skipinitialspace=True) over all lines: commas and newlines separate,
    /// double quotes protect commas, "" inside quotes is a literal quote.</summary>
    internal static List<string> SplitCsv(string text, string axis)
    {
        var result = new List<string>();
        var field = new StringBuilder();
        int i = 0;
        bool atFieldStart = true;
        while (i < text.Length)
        {
            char c = text[i];
            if (atFieldStart && c == ' ') { i++; continue; }
            if (atFieldStart && c == '"')
            {
                i++;
                while (true)
                {
                    if (i >= text.Length)
                        throw new FormatException($"X/Y/Z axis \"{axis}\": a double quote is never closed in \"{text}\".");
                    if (text[i] == '"')
                    {
                        if (i + 1 < text.Length && text[i + 1] == '"') { field.Append('"'); i += 2; continue; }
                        i++;
                        break;
                    }
                    field.Append(text[i++]);
                }
                atFieldStart = false;
                continue;
            }
            atFieldStart = false;
            if (c == ',' || c == '\n')
            {
                result.Add(field.ToString());
                field.Clear();
                atFieldStart = true;
                i++;
                continue;
            }
            if (c != '\r') field.Append(c);
            i++;
        }
        result.Add(field.ToString());
        return result;
    }

    // scripts/xyz_grid.py re_range / re_range_count (merged: either "(+step)" or "[count]").
    [GeneratedRegex(@"^\s*([+-]?\s*\d+)\s*-\s*([+-]?\s*\d+)(?:\s*\(([+-]\d+)\s*\)|\s*\[(\d+)\s*\])?\s*$")]
    private static partial Regex IntRangeRegex();

    // re_range_float / re_range_count_float, with the decimal point escaped.
    [GeneratedRegex(@"^\s*([+-]?\s*\d+(?:\.\d*)?)\s*-\s*([+-]?\s*\d+(?:\.\d*)?)(?:\s*\(([+-]\d+(?:\.\d*)?)\s*\)|\s*\[(\d+(?:\.\d*)?)\s*\])?\s*$")]
    private static partial Regex FloatRangeRegex();
}
