using System.Text.Json;
using DreamBooth.Parity;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Text;

namespace DreamBooth.Tests.Text;

/// <summary>Shared tokenizers over the real CLIP vocabulary in the parity fixtures (loaded once per test run).</summary>
public static class ClipFixture
{
    static readonly Lazy<ClipTokenizer> Sd1Lazy = new(() => ClipTokenizer.FromFolder(Folder));
    static readonly Lazy<ClipTokenizer> Sd2Lazy = new(() => ClipTokenizer.FromFiles(
        Path.Combine(Folder, "vocab.json"), Path.Combine(Folder, "merges.txt"), Path.Combine(Folder, "sd2")));

    public static string Folder => TestPaths.ParityPath("tokenizer");
    public static ClipTokenizer Sd1 => Sd1Lazy.Value;
    public static ClipTokenizer Sd2 => Sd2Lazy.Value;

    public static IEnumerable<JsonElement> Cases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Folder, "cases.json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => c.Clone()).ToList();
    }

    public static JsonElement Case(string name) => Cases().Single(c => c.GetProperty("name").GetString() == name);

    public static int[] Ints(JsonElement c, string field) => c.GetProperty(field).EnumerateArray().Select(x => x.GetInt32()).ToArray();
}

public class TokenizerParityTests
{
    public static TheoryData<string> CaseNames()
    {
        var data = new TheoryData<string>();
        foreach (var c in ClipFixture.Cases()) data.Add(c.GetProperty("name").GetString()!);
        return data;
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Ids_match_transformers_slow_tokenizer(string name)
    {
        var c = ClipFixture.Case(name);
        var prompt = TokenizerParity.CasePrompt(c);
        Assert.Equal(ClipFixture.Ints(c, "ids"), ClipFixture.Sd1.Encode(prompt));
        Assert.Equal(c.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToArray(), ClipFixture.Sd1.Tokens(prompt));
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Sd1_input_ids_match(string name)
    {
        var c = ClipFixture.Case(name);
        Assert.Equal(ClipFixture.Ints(c, "input_ids_sd1"), ClipFixture.Sd1.EncodeForModel(TokenizerParity.CasePrompt(c)).InputIds);
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Sd2_ids_and_input_ids_match(string name)
    {
        var c = ClipFixture.Case(name);
        var prompt = TokenizerParity.CasePrompt(c);
        Assert.Equal(ClipFixture.Ints(c, "ids_sd2"), ClipFixture.Sd2.Encode(prompt));
        Assert.Equal(ClipFixture.Ints(c, "input_ids_sd2"), ClipFixture.Sd2.EncodeForModel(prompt).InputIds);
    }

    [Fact]
    public void Parity_runner_passes_on_the_shared_fixture_and_reports_one_comparison_per_case_and_field()
    {
        var report = TokenizerParity.Run(ClipFixture.Folder);
        Assert.Null(report.Error);
        Assert.Equal(ClipFixture.Cases().Count() * 4, report.Comparisons.Count);
        Assert.True(report.Passed, string.Join("\n", report.Comparisons.Where(x => !x.Passed).Select(x => $"{x.Name}: {x.Note}")));
    }

    [Fact]
    public void CompareIds_counts_mismatches_and_flags_length_differences()
    {
        var same = TokenizerParity.CompareIds("a", [1, 2, 3], [1, 2, 3]);
        Assert.True(same.Passed);
        var diff = TokenizerParity.CompareIds("b", [1, 9, 3, 8], [1, 2, 3, 4]);
        Assert.False(diff.Passed);
        Assert.Equal(2, diff.MaxAbsError);
        var len = TokenizerParity.CompareIds("c", [1, 2], [1, 2, 3]);
        Assert.True(double.IsPositiveInfinity(len.MaxAbsError));
        Assert.Contains("length", len.Note);
    }

    [Fact]
    public void Parity_runner_reports_a_missing_folder_as_an_error()
    {
        using var tmp = TestPaths.NewTempDir();
        var report = TokenizerParity.Run(tmp.Path);
        Assert.False(report.Passed);
        Assert.NotNull(report.Error);
    }
}
