using DreamBooth.Imaging;

namespace DreamBooth.Tests.Imaging;

public class XyzAxisTests
{
    [Theory]
    [InlineData("1-5", new long[] { 1, 2, 3, 4, 5 })]
    [InlineData("1-10 (+2)", new long[] { 1, 3, 5, 7, 9 })]
    [InlineData("7,9,11", new long[] { 7, 9, 11 })]
    [InlineData(" 7 , 9 ,, 11 ", new long[] { 7, 9, 11 })]
    [InlineData("10-1 (-3)", new long[] { 10, 7, 4, 1 })]
    [InlineData("5-1", new long[] { 5, 4, 3, 2, 1 })]
    [InlineData("1-10 [4]", new long[] { 1, 4, 7, 10 })]
    [InlineData("0-10 [3], 20", new long[] { 0, 5, 10, 20 })]
    [InlineData("-1, -5--3", new long[] { -1, -5, -4, -3 })]
    [InlineData("100 - 102", new long[] { 100, 101, 102 })]
    public void SeedAxis_ParsesListsAndRanges(string text, long[] expected)
    {
        var axis = XyzAxis.Parse(XyzAxisKind.Seed, text);
        Assert.Equal(expected, axis.IntValues());
        Assert.Equal(expected.Select(v => $"Seed: {v}"), axis.Labels());
    }

    [Theory]
    [InlineData("5-8 (+0.5)", new[] { 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0 })]
    [InlineData("7, 7.5, 9", new[] { 7.0, 7.5, 9.0 })]
    [InlineData("1-2 [5]", new[] { 1.0, 1.25, 1.5, 1.75, 2.0 })]
    [InlineData("0.1-0.3 (+0.1)", new[] { 0.1, 0.2, 0.3 })]
    public void CfgAxis_ParsesFloatRanges(string text, double[] expected)
    {
        var axis = XyzAxis.Parse(XyzAxisKind.CfgScale, text);
        Assert.Equal(expected, axis.FloatValues());
    }

    [Fact]
    public void CfgAxis_LabelsLikePythonFloats()
    {
        Assert.Equal(["CFG Scale: 7.0", "CFG Scale: 7.5"], XyzAxis.Parse(XyzAxisKind.CfgScale, "7, 7.5").Labels());
    }

    [Theory]
    [InlineData(XyzAxisKind.Steps, "ten", "Steps", "ten")]
    [InlineData(XyzAxisKind.Steps, "0, 10", "Steps", "0 steps")]
    [InlineData(XyzAxisKind.Seed, "1-5 (+0)", "Seed", "step of 0")]
    [InlineData(XyzAxisKind.Seed, "1-5 (-1)", "Seed", "never reaches")]
    [InlineData(XyzAxisKind.Seed, "", "Seed", "no values")]
    [InlineData(XyzAxisKind.CfgScale, "7,x", "CFG Scale", "\"x\"")]
    [InlineData(XyzAxisKind.CfgScale, "1-2 [0]", "CFG Scale", "count")]
    [InlineData(XyzAxisKind.Sampler, "\"Euler a, DDIM", "Sampler", "never closed")]
    [InlineData(XyzAxisKind.Seed, "1-100000", "Seed", "too many")]
    public void BadInput_ErrorNamesTheAxis(XyzAxisKind kind, string text, string axisName, string fragment)
    {
        var ex = Assert.Throws<FormatException>(() => XyzAxis.Parse(kind, text));
        Assert.Contains($"\"{axisName}\"", ex.Message);
        Assert.Contains(fragment, ex.Message);
    }

    [Fact]
    public void StringAxes_UseCsvQuotingAndKnownChoices()
    {
        var s = XyzAxis.Parse(XyzAxisKind.Sampler, "euler a, DPM++ 2M Karras", ["Euler a", "DPM++ 2M Karras", "DDIM"]);
        Assert.Equal(["Euler a", "DPM++ 2M Karras"], s.Values); // canonical spelling
        var ex = Assert.Throws<FormatException>(() => XyzAxis.Parse(XyzAxisKind.Sampler, "Heun", ["Euler a", "DDIM"]));
        Assert.Contains("Heun", ex.Message);
        Assert.Contains("Euler a, DDIM", ex.Message);

        var ck = XyzAxis.Parse(XyzAxisKind.Checkpoint, "models/sd15.safetensors, \"my, model\"");
        Assert.Equal(["models/sd15.safetensors", "my, model"], ck.Values);
        Assert.Equal(["Checkpoint name: sd15.safetensors", "Checkpoint name: my, model"], ck.Labels());
    }

    [Fact]
    public void PromptSearchReplace_FirstValueIsSearchTerm()
    {
        var sr = XyzAxis.Parse(XyzAxisKind.PromptSearchReplace, "dog, cat, \"red, fox\"");
        Assert.Equal("dog", sr.SearchTerm);
        Assert.Equal(["dog", "cat", "red, fox"], sr.Labels());
        sr.ValidateSearchTerm("a photo of a dog", "");
        Assert.Equal(("a photo of a red, fox", "ugly red, fox-less"), sr.ApplySearchReplace("a photo of a dog", "ugly dog-less", 2));
        Assert.Equal(("a photo of a dog", "ugly dog-less"), sr.ApplySearchReplace("a photo of a dog", "ugly dog-less", 0));
        var ex = Assert.Throws<FormatException>(() => sr.ValidateSearchTerm("a photo of a horse", "blurry"));
        Assert.Contains("\"dog\"", ex.Message);
        Assert.Contains("Prompt S/R", ex.Message);
        Assert.Throws<InvalidOperationException>(() => XyzAxis.Parse(XyzAxisKind.Seed, "1").SearchTerm);
    }
}
