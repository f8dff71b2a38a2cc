using System.Globalization;
using System.Text;
using System.Text.Json;
using DreamBooth.Text;

namespace DreamBooth.Parity;

/// <summary>
/// Runs a tokenizer fixture folder (cases.json + vocab.json/merges.txt/configs, optional sd2/ configs; format of
/// shared/parity/tokenizer) through <see cref="ClipTokenizer"/> and compares every case exactly: <c>ids</c>,
/// <c>ids_sd2</c>, <c>input_ids_sd1</c>, <c>input_ids_sd2</c>. One comparison per case and field; MaxAbsError is the
/// number of mismatching positions (∞ on a length mismatch), and the note says what differed.
/// </summary>
public static class TokenizerParity
{
    /// <summary>Compares all cases of <paramref name="folder"/>; never throws for bad fixtures (the report carries the error).</summary>
    public static ParityReport Run(string folder)
    {
        var comparisons = new List<ParityComparison>();
        try
        {
            var casesPath = Path.Combine(folder, "cases.json");
            if (!File.Exists(casesPath))
                return new ParityReport(folder, "tokenizer", comparisons, $"{casesPath} not found.");
            var sd1 = ClipTokenizer.FromFolder(folder);
            var sd2Dir = Path.Combine(folder, "sd2");
            ClipTokenizer? sd2 = Directory.Exists(sd2Dir)
                ? ClipTokenizer.FromFiles(Path.Combine(folder, "vocab.json"), Path.Combine(folder, "merges.txt"), sd2Dir)
                : null;

            using var doc = JsonDocument.Parse(File.ReadAllBytes(casesPath));
            if (!doc.RootElement.TryGetProperty("cases", out var cases) || cases.ValueKind != JsonValueKind.Array)
                return new ParityReport(folder, "tokenizer", comparisons, $"{casesPath} has no 'cases' array.");

            foreach (var c in cases.EnumerateArray())
            {
                var name = c.TryGetProperty("name", out var n) ? n.GetString() ?? "?" : "?";
                var prompt = CasePrompt(c);
                int[] ids = sd1.Encode(prompt);
                Add(comparisons, $"{name}.ids", ids, c, "ids");
                Add(comparisons, $"{name}.input_ids_sd1", sd1.EncodeForModel(prompt).InputIds, c, "input_ids_sd1");
                if (sd2 is not null)
                {
                    Add(comparisons, $"{name}.ids_sd2", sd2.Encode(prompt), c, "ids_sd2");
                    Add(comparisons, $"{name}.input_ids_sd2", sd2.EncodeForModel(prompt).InputIds, c, "input_ids_sd2");
                }
                else
                {
                    foreach (var field in new[] { "ids_sd2", "input_ids_sd2" })
                        if (c.TryGetProperty(field, out _))
                            comparisons.Add(new ParityComparison($"{name}.{field}", double.PositiveInfinity, 0, 0, false,
                                $"the case has {field} but {sd2Dir} (the SD 2.x tokenizer configs) is missing"));
                }
            }
            return new ParityReport(folder, "tokenizer", comparisons);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or Loading.ModelLoadException
            or InvalidOperationException or FormatException or ArgumentException or KeyNotFoundException)
        {
            return new ParityReport(folder, "tokenizer", comparisons, e.Message);
        }
    }

    /// <summary>The case's prompt, taken from <c>prompt_utf8_hex</c> when present (exact bytes), else <c>prompt</c>.</summary>
    public static string CasePrompt(JsonElement c)
    {
        if (c.TryGetProperty("prompt_utf8_hex", out var hex) && hex.ValueKind == JsonValueKind.String)
            return Encoding.UTF8.GetString(Convert.FromHexString(hex.GetString()!));
        return c.GetProperty("prompt").GetString() ?? "";
    }

    static void Add(List<ParityComparison> list, string name, int[] actual, JsonElement c, string field)
    {
        if (!c.TryGetProperty(field, out var e) || e.ValueKind != JsonValueKind.Array) return;
        var expected = e.EnumerateArray().Select(x => x.GetInt32()).ToArray();
        list.Add(CompareIds(name, actual, expected));
    }

    /// <summary>Exact comparison of two id sequences.</summary>
    public static ParityComparison CompareIds(string name, IReadOnlyList<int> actual, IReadOnlyList<int> expected)
    {
        if (actual.Count != expected.Count)
        {
            int common = 0;
            while (common < Math.Min(actual.Count, expected.Count) && actual[common] == expected[common]) common++;
            return new ParityComparison(name, double.PositiveInfinity, 0, 0, false,
                $"length {actual.Count} != expected {expected.Count}; first difference at {common}: got [{Window(actual, common)}], expected [{Window(expected, common)}]");
        }
        int mismatches = 0, first = -1;
        for (int i = 0; i < actual.Count; i++)
            if (actual[i] != expected[i]) { mismatches++; if (first < 0) first = i; }
        return new ParityComparison(name, mismatches, 0, 0, mismatches == 0,
            mismatches == 0 ? null : $"{mismatches} of {expected.Count} ids differ; first at {first}: got [{Window(actual, first)}], expected [{Window(expected, first)}]");
    }

    static string Window(IReadOnlyList<int> ids, int at) =>
        string.Join(",", ids.Skip(Math.Max(0, at)).Take(6).Select(i => i.ToString(CultureInfo.InvariantCulture)));
}
