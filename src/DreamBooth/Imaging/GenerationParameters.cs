using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace DreamBooth.Imaging;

/// <summary>
/// The settings that produced an image, and AUTOMATIC1111's "parameters" infotext format for them
/// (modules/processing.py <c>create_infotext</c>, modules/infotext_utils.py <c>parse_generation_parameters</c>):
/// <code>
/// prompt (may span lines)
/// Negative prompt: negative (may span lines; line omitted when empty)
/// Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x512, Model hash: abcd, Model: name, ...
/// </code>
/// Values containing ',', ':' or a newline are written as JSON strings (A1111's <c>quote</c>).
/// </summary>
public sealed partial record GenerationParameters
{
    /// <summary>The positive prompt (may contain newlines).</summary>
    public string Prompt { get; init; } = "";
    /// <summary>The negative prompt; empty when none.</summary>
    public string NegativePrompt { get; init; } = "";
    /// <summary>Sampling steps.</summary>
    public int Steps { get; init; } = 20;
    /// <summary>Sampler name exactly as A1111 prints it ("Euler a", "DPM++ 2M Karras", "DDIM", ...).</summary>
    public string Sampler { get; init; } = "Euler a";
    /// <summary>Classifier-free guidance scale.</summary>
    public double CfgScale { get; init; } = 7;
    /// <summary>The seed.</summary>
    public long Seed { get; init; } = -1;
    /// <summary>Image width in pixels.</summary>
    public int Width { get; init; } = 512;
    /// <summary>Image height in pixels.</summary>
    public int Height { get; init; } = 512;
    /// <summary>Short model hash as A1111 prints it (first 10 hex of the SHA-256 of the checkpoint file).</summary>
    public string? ModelHash { get; init; }
    /// <summary>Model name (checkpoint file name without extension).</summary>
    public string? ModelName { get; init; }
    /// <summary>CLIP skip (A1111 writes it only when &gt; 1; we write it whenever set).</summary>
    public int? ClipSkip { get; init; }
    /// <summary>img2img denoising strength.</summary>
    public double? DenoisingStrength { get; init; }
    /// <summary>
    /// Further "key: value" pairs (e.g. "Schedule type", "Hires upscaler", "Version"). Keys that A1111 writes at a
    /// fixed place ("Schedule type" after the sampler, "Face restoration" before the size, "ENSD" after clip skip,
    /// "Version" last, ...) are written there; the others keep their order after those. Parsing a real A1111
    /// infotext and writing it again therefore usually reproduces it byte for byte.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, string>> Extra { get; init; } = [];

    static readonly string[] KnownKeys =
        ["Steps", "Sampler", "CFG scale", "Seed", "Size", "Model hash", "Model", "Denoising strength", "Clip skip"];

    static readonly string[] SlotAfterSampler = ["Schedule type"];
    static readonly string[] SlotAfterCfg = ["Image CFG scale"];
    static readonly string[] SlotAfterSeed = ["Face restoration"];
    static readonly string[] SlotAfterModel =
        ["FP8 weight", "Cache FP16 weight for LoRA", "VAE hash", "VAE", "Variation seed", "Variation seed strength", "Seed resize from"];
    static readonly string[] SlotAfterDenoising = ["Conditional mask weight"];
    static readonly string[] SlotAfterClipSkip =
        ["ENSD", "Token merging ratio", "Token merging ratio hr", "Init image hash", "RNG", "Tiling"];
    static readonly string[] SlotLast = ["Version", "User"];
    static readonly HashSet<string> SlottedKeys =
        [.. SlotAfterSampler, .. SlotAfterCfg, .. SlotAfterSeed, .. SlotAfterModel, .. SlotAfterDenoising, .. SlotAfterClipSkip, .. SlotLast];

    void AddSlot(List<KeyValuePair<string, string>> pairs, string[] keys)
    {
        foreach (var key in keys)
            foreach (var e in Extra)
                if (e.Key == key) pairs.Add(e);
    }

    /// <summary>Checks the values; throws <see cref="ArgumentException"/> naming the field and the fix.</summary>
    public void Validate()
    {
        if (Steps < 1) throw new ArgumentException($"{nameof(Steps)} must be at least 1 (got {Steps}).", nameof(Steps));
        if (string.IsNullOrWhiteSpace(Sampler)) throw new ArgumentException($"{nameof(Sampler)} must be a sampler name such as \"Euler a\".", nameof(Sampler));
        if (Width < 1 || Height < 1) throw new ArgumentException($"Size must be positive (got {Width}x{Height}).", nameof(Width));
        if (!double.IsFinite(CfgScale)) throw new ArgumentException($"{nameof(CfgScale)} must be a finite number.", nameof(CfgScale));
        if (ClipSkip is < 1) throw new ArgumentException($"{nameof(ClipSkip)} must be 1 or more when set (got {ClipSkip}).", nameof(ClipSkip));
        if (DenoisingStrength is { } d && (d < 0 || d > 1))
            throw new ArgumentException($"{nameof(DenoisingStrength)} must lie in [0, 1] (got {d}).", nameof(DenoisingStrength));
        foreach (var (k, _) in Extra)
        {
            if (!ParamKeyRegex().IsMatch(k))
                throw new ArgumentException(
                    $"Extra key \"{k}\" cannot be written in an infotext: keys must start with a letter/digit/underscore and contain only letters, digits, spaces, '-', '/' or '_'.",
                    nameof(Extra));
            if (Array.IndexOf(KnownKeys, k) >= 0)
                throw new ArgumentException($"Extra key \"{k}\" duplicates a typed field; set the property instead.", nameof(Extra));
        }
    }

    /// <summary>
    /// The A1111 infotext (what the web UI shows under an image and stores in the PNG "parameters" chunk).
    /// Like A1111 this does not validate; after <see cref="Validate"/> succeeds, <see cref="Parse"/> reads the text
    /// back to an equal record as long as prompt lines carry no surrounding whitespace and no prompt line starts with
    /// "Negative prompt:" (A1111's reader strips lines and splits there).
    /// </summary>
    public string ToInfotext()
    {
        // Key order of A1111's create_infotext; extra keys that A1111 writes at fixed places go there,
        // all other extras follow "Tiling" (where A1111 puts extra_generation_params), then "Version", "User".
        var pairs = new List<KeyValuePair<string, string>>
        {
            new("Steps", Steps.ToString(CultureInfo.InvariantCulture)),
            new("Sampler", Sampler),
        };
        AddSlot(pairs, SlotAfterSampler);
        pairs.Add(new("CFG scale", FormatNumber(CfgScale)));
        AddSlot(pairs, SlotAfterCfg);
        pairs.Add(new("Seed", Seed.ToString(CultureInfo.InvariantCulture)));
        AddSlot(pairs, SlotAfterSeed);
        pairs.Add(new("Size", $"{Width.ToString(CultureInfo.InvariantCulture)}x{Height.ToString(CultureInfo.InvariantCulture)}"));
        if (ModelHash != null) pairs.Add(new("Model hash", ModelHash));
        if (ModelName != null) pairs.Add(new("Model", ModelName));
        AddSlot(pairs, SlotAfterModel);
        if (DenoisingStrength is { } ds) pairs.Add(new("Denoising strength", FormatNumber(ds)));
        AddSlot(pairs, SlotAfterDenoising);
        if (ClipSkip is { } cs) pairs.Add(new("Clip skip", cs.ToString(CultureInfo.InvariantCulture)));
        AddSlot(pairs, SlotAfterClipSkip);
        pairs.AddRange(Extra.Where(e => !SlottedKeys.Contains(e.Key)));
        AddSlot(pairs, SlotLast);

        // create_infotext: ", ".join(k if k == v else f"{k}: {quote(v)}")
        var paramsLine = string.Join(", ", pairs.Select(p => p.Key == p.Value ? p.Key : $"{p.Key}: {Quote(p.Value)}"));
        var negative = NegativePrompt.Length > 0 ? "\nNegative prompt: " + NegativePrompt : "";
        return PyStrip($"{Prompt}{negative}\n{paramsLine}");
    }

    /// <summary>
    /// Parses an A1111 infotext like the web UI's reader: the last line holds the parameters when at least three
    /// "key: value" pairs are found in it; earlier lines are the prompt until a line starting with
    /// "Negative prompt:", then the negative prompt. Lines are stripped. Unknown keys go to <see cref="Extra"/>;
    /// missing keys keep A1111's UI defaults (20 steps, Euler a, CFG 7, seed -1, 512x512).
    /// Throws <see cref="FormatException"/> when a known key has a value of the wrong form (naming key and value).
    /// </summary>
    public static GenerationParameters Parse(string infotext)
    {
        ArgumentNullException.ThrowIfNull(infotext);
        var lines = PyStrip(infotext).Split('\n').ToList();
        var lastLine = lines[^1];
        lines.RemoveAt(lines.Count - 1);
        if (ParamRegex().Matches(lastLine).Count < 3)
        {
            lines.Add(lastLine);
            lastLine = "";
        }

        var prompt = new StringBuilder();
        var negative = new StringBuilder();
        bool doneWithPrompt = false;
        foreach (var raw in lines)
        {
            var line = PyStrip(raw);
            if (line.StartsWith("Negative prompt:", StringComparison.Ordinal))
            {
                doneWithPrompt = true;
                line = PyStrip(line[16..]);
            }
            var sb = doneWithPrompt ? negative : prompt;
            if (sb.Length > 0) sb.Append('\n');
            sb.Append(line);
        }

        var result = new GenerationParameters { Prompt = prompt.ToString(), NegativePrompt = negative.ToString() };
        var extra = new List<KeyValuePair<string, string>>();
        foreach (Match m in ParamRegex().Matches(lastLine))
        {
            var key = m.Groups[1].Value;
            var value = m.Groups[2].Value;
            if (value.Length >= 2 && value[0] == '"' && value[^1] == '"')
                value = Unquote(value);
            switch (key)
            {
                case "Steps": result = result with { Steps = ParseInt(key, value) }; break;
                case "Sampler": result = result with { Sampler = value }; break;
                case "CFG scale": result = result with { CfgScale = ParseDouble(key, value) }; break;
                case "Seed": result = result with { Seed = ParseLong(key, value) }; break;
                case "Size":
                    var sm = SizeRegex().Match(value);
                    if (!sm.Success)
                        throw new FormatException($"Infotext \"Size\" must look like 512x768; got \"{value}\".");
                    result = result with { Width = ParseInt(key, sm.Groups[1].Value), Height = ParseInt(key, sm.Groups[2].Value) };
                    break;
                case "Model hash": result = result with { ModelHash = value }; break;
                case "Model": result = result with { ModelName = value }; break;
                case "Denoising strength": result = result with { DenoisingStrength = ParseDouble(key, value) }; break;
                case "Clip skip": result = result with { ClipSkip = ParseInt(key, value) }; break;
                default: extra.Add(new(key, value)); break;
            }
        }
        return result with { Extra = extra };
    }

    /// <summary>Like <see cref="Parse"/> but returns false instead of throwing on malformed known values.</summary>
    public static bool TryParse(string infotext, out GenerationParameters? parameters)
    {
        try
        {
            parameters = Parse(infotext);
            return true;
        }
        catch (FormatException)
        {
            parameters = null;
            return false;
        }
    }

    /// <summary>Looks up a value in <see cref="Extra"/> by key (first match), or null.</summary>
    public string? GetExtra(string key)
    {
        foreach (var (k, v) in Extra)
            if (k == key) return v;
        return null;
    }

    /// <summary>Value equality including the <see cref="Extra"/> pairs (in order).</summary>
    public bool Equals(GenerationParameters? other) =>
        other is not null
        && Prompt == other.Prompt && NegativePrompt == other.NegativePrompt && Steps == other.Steps
        && Sampler == other.Sampler && CfgScale.Equals(other.CfgScale) && Seed == other.Seed
        && Width == other.Width && Height == other.Height && ModelHash == other.ModelHash
        && ModelName == other.ModelName && ClipSkip == other.ClipSkip && DenoisingStrength == other.DenoisingStrength
        && Extra.SequenceEqual(other.Extra);

    /// <inheritdoc />
    public override int GetHashCode()
    {
        var h = new HashCode();
        h.Add(Prompt); h.Add(NegativePrompt); h.Add(Steps); h.Add(Sampler); h.Add(CfgScale); h.Add(Seed);
        h.Add(Width); h.Add(Height); h.Add(ModelHash); h.Add(ModelName); h.Add(ClipSkip); h.Add(DenoisingStrength);
        foreach (var kv in Extra) h.Add(kv);
        return h.ToHashCode();
    }

    /// <summary>Python's str(float) for typical values: integral values print without ".0" as A1111's UI shows them
    /// (gradio gives ints for whole slider values), others in shortest round-trip form.</summary>
    static string FormatNumber(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    static int ParseInt(string key, string value) =>
        int.TryParse(value.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var i)
            ? i
            : double.TryParse(value.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && d == Math.Floor(d) && Math.Abs(d) < int.MaxValue
                ? (int)d
                : throw new FormatException($"Infotext \"{key}\" must be a whole number; got \"{value}\".");

    static long ParseLong(string key, string value) =>
        long.TryParse(value.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var i)
            ? i
            : throw new FormatException($"Infotext \"{key}\" must be a whole number; got \"{value}\".");

    static double ParseDouble(string key, string value) =>
        double.TryParse(value.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d)
            ? d
            : throw new FormatException($"Infotext \"{key}\" must be a number; got \"{value}\".");

    /// <summary>
    /// A1111's <c>quote</c>: values containing ',', '\n' or ':' become JSON strings (json.dumps, ensure_ascii=False).
    /// We also quote the rare values A1111's reader would otherwise change (already wrapped in double quotes, or with
    /// surrounding whitespace), so that our own output always reads back exactly; A1111 decodes those the same way.
    /// </summary>
    internal static string Quote(string text)
    {
        bool needs = text.Contains(',') || text.Contains('\n') || text.Contains(':')
            || (text.Length >= 2 && text[0] == '"' && text[^1] == '"')
            || (text.Length > 0 && (char.IsWhiteSpace(text[0]) || char.IsWhiteSpace(text[^1])));
        if (!needs)
            return text;
        var sb = new StringBuilder(text.Length + 2);
        sb.Append('"');
        foreach (var c in text)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
        return sb.ToString();
    }

    /// <summary>A1111's <c>unquote</c>: a JSON string literal is decoded; anything that fails to decode is kept as is.</summary>
    internal static string Unquote(string text)
    {
        if (text.Length == 0 || text[0] != '"' || text[^1] != '"')
            return text;
        try
        {
            return JsonSerializer.Deserialize<string>(text) ?? text;
        }
        catch (JsonException)
        {
            return text;
        }
    }

    /// <summary>Python's str.strip() (whitespace per str.isspace, which includes \x1c-\x1f unlike .NET).</summary>
    static string PyStrip(string s)
    {
        int start = 0, end = s.Length;
        while (start < end && IsPySpace(s[start])) start++;
        while (end > start && IsPySpace(s[end - 1])) end--;
        return s[start..end];
    }

    static bool IsPySpace(char c) => char.IsWhiteSpace(c) || (c >= '\x1c' && c <= '\x1f');

    // modules/infotext_utils.py re_param_code
    [GeneratedRegex("""\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)""")]
    private static partial Regex ParamRegex();

    [GeneratedRegex("""^\w[\w \-/]+$""")]
    private static partial Regex ParamKeyRegex();

    [GeneratedRegex("""^(\d+)x(\d+)$""")]
    private static partial Regex SizeRegex();
}
