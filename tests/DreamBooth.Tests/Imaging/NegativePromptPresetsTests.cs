using DreamBooth.Imaging;
using DreamBooth.Tests.Infrastructure;

namespace DreamBooth.Tests.Imaging;

public class NegativePromptPresetsTests
{
    static string RepoFile => Path.Combine(TestPaths.RepoRoot, "data", "negative-prompts.json");

    [Fact]
    public void RepositoryFile_LoadsAndContainsTheSd21List()
    {
        var presets = NegativePromptPresets.Load(RepoFile);
        Assert.True(presets.All.Count >= 4);
        var sd21 = presets.Get("sd21-watermark-anatomy");
        Assert.StartsWith("center label, full-body, blur, cut-out, vinyl", sd21.Text);
        Assert.EndsWith("fused fingers, too many fingers, long neck", sd21.Text);
        Assert.Contains("diagonal watermark and/or faint, translucent image/pattern superimposed", sd21.Text);
        Assert.Contains("[out of frame]", sd21.Text);
        Assert.False(string.IsNullOrWhiteSpace(sd21.Description));
        Assert.False(string.IsNullOrWhiteSpace(sd21.Source));
        Assert.Equal("", presets.Get("NONE").Text); // case-insensitive
        Assert.All(presets.All, p => Assert.False(string.IsNullOrWhiteSpace(p.Description)));
    }

    [Fact]
    public void Get_UnknownName_ListsValidNames()
    {
        var presets = NegativePromptPresets.Load(RepoFile);
        var ex = Assert.Throws<KeyNotFoundException>(() => presets.Get("nope"));
        Assert.Contains("nope", ex.Message);
        Assert.Contains("sd21-watermark-anatomy", ex.Message);
        Assert.Contains("quality", ex.Message);
    }

    [Fact]
    public void Load_MalformedFiles_ExplainTheProblem()
    {
        using var dir = TestPaths.NewTempDir();
        File.WriteAllText(dir.File("a.json"), "{ \"x\": { \"text\": \"t\", \"description\": \"d\" } }");
        var ex = Assert.Throws<InvalidDataException>(() => NegativePromptPresets.Load(dir.File("a.json")));
        Assert.Contains("\"x\"", ex.Message);
        Assert.Contains("source", ex.Message);
        File.WriteAllText(dir.File("b.json"), "[1,2]");
        Assert.Throws<InvalidDataException>(() => NegativePromptPresets.Load(dir.File("b.json")));
        File.WriteAllText(dir.File("c.json"), "{ broken");
        Assert.Contains("c.json", Assert.Throws<InvalidDataException>(() => NegativePromptPresets.Load(dir.File("c.json"))).Message);
        Assert.Throws<FileNotFoundException>(() => NegativePromptPresets.Load(dir.File("missing.json")));
    }
}
