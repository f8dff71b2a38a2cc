using DreamBooth.Imaging.Import;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using static DreamBooth.Tests.Imaging.Import.ImportTestImages;

namespace DreamBooth.Tests.Imaging.Import;

public class ImportBuildingBlockTests
{
    [Theory]
    [InlineData("llmcbrrrqqdpj (3).jpg", "llmcbrrrqqdpj")]
    [InlineData("llmcbrrrqqdpj.png", "llmcbrrrqqdpj")]
    [InlineData("llmcbrrrqqdpj(12).jpeg", "llmcbrrrqqdpj")]
    [InlineData("my_cat_sks (2).webp", "my cat sks")]
    [InlineData("/some/dir/sks2 person (1).JPG", "sks2 person")]
    [InlineData("(4).jpg", "")]
    public void FileNameCaption_StripsCounterAndExtension(string name, string expected) =>
        Assert.Equal(expected, CaptionRules.FromFileName(name));

    [Fact]
    public void FileNameCaption_UnderscoresCanBeKept() =>
        Assert.Equal("my_cat", CaptionRules.FromFileName("my_cat (2).jpg", underscoresAsSpaces: false));

    [Fact]
    public void CameraNames_AreRecognised()
    {
        Assert.True(CaptionRules.LooksLikeCameraName("IMG 2034"));
        Assert.True(CaptionRules.LooksLikeCameraName("PXL 20221201 1234"));
        Assert.False(CaptionRules.LooksLikeCameraName("llmcbrrrqqdpj"));
    }

    [Fact]
    public void Steps_PerImageRule_ExplainsItselfAndTheOtherRules()
    {
        var s = StepsCalculator.Recommend(20);
        Assert.Equal(1500, s.RecommendedSteps);
        Assert.Equal((1000, 2000), (s.LowSteps, s.HighSteps));
        Assert.Equal(StepsRule.PerImage, s.Rule);
        Assert.Empty(s.Warnings);
        var text = s.ToText();
        Assert.Contains("per image", text, StringComparison.Ordinal);
        Assert.Contains("20 x 75 = 1500", text, StringComparison.Ordinal);
        Assert.Contains("images x 10", text, StringComparison.Ordinal);
        Assert.Contains("200", text, StringComparison.Ordinal); // what images x 10 would have said
        Assert.Contains("650", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Steps_WarnForFewAndManyImages()
    {
        var few = StepsCalculator.Recommend(5);
        Assert.Contains("12-25", Assert.Single(few.Warnings), StringComparison.Ordinal);
        var many = StepsCalculator.Recommend(40);
        Assert.Contains("more than 30", Assert.Single(many.Warnings), StringComparison.Ordinal);
        Assert.Empty(StepsCalculator.Recommend(10).Warnings);
        Assert.Empty(StepsCalculator.Recommend(30).Warnings);
        Assert.Equal(0, StepsCalculator.Recommend(0).RecommendedSteps);
    }

    [Fact]
    public void Steps_OtherRules_StateWhatTheyMeanPerImage()
    {
        var fixedTotal = StepsCalculator.Recommend(20, StepsRule.FixedTotal650);
        Assert.Equal(650, fixedTotal.RecommendedSteps);
        Assert.Contains("32.5 steps per image, below", fixedTotal.Explanation, StringComparison.Ordinal);
        var ten = StepsCalculator.Recommend(20, StepsRule.ImagesTimesTen);
        Assert.Equal(200, ten.RecommendedSteps);
        Assert.Contains("under-trained", ten.Explanation, StringComparison.Ordinal);
        Assert.Equal(2000, StepsCalculator.Recommend(20, stepsPerImage: 100).RecommendedSteps);
    }

    [Fact]
    public void PerceptualHash_IsStableUnderResizeAndDistinctForDifferentImages()
    {
        using var a = Detailed(400, 300, 1);
        using var aSmall = a.Clone(c => c.Resize(133, 100));
        using var b = Detailed(400, 300, 2);
        ulong ha = PerceptualHash.Compute(a), hs = PerceptualHash.Compute(aSmall), hb = PerceptualHash.Compute(b);
        Assert.InRange(PerceptualHash.Distance(ha, hs), 0, 6);
        Assert.InRange(PerceptualHash.Distance(ha, hb), 16, 64);
        Assert.Equal(0, PerceptualHash.Distance(ha, ha));
    }

    [Fact]
    public void VarianceOfLaplacian_MatchesAHandComputedValue()
    {
        // 5x5 with a single bright pixel in the middle: interior Laplacians are -4v at the centre, v at its 4 neighbours, 0 elsewhere.
        var px = new float[25];
        px[12] = 10;
        double score = BlurDetector.VarianceOfLaplacian(new LumaPlane(5, 5, px));
        double[] lap = [-40, 10, 10, 10, 10, 0, 0, 0, 0];
        double mean = lap.Average(), variance = lap.Select(v => (v - mean) * (v - mean)).Average();
        Assert.Equal(variance, score, 9);
        Assert.Equal(0, BlurDetector.VarianceOfLaplacian(new LumaPlane(5, 5, new float[25])));
    }

    [Fact]
    public void SmartCrop_Entropy_IsZeroOnFlatWindows()
    {
        var px = new float[30 * 10];
        for (int y = 0; y < 10; y++)
            for (int x = 20; x < 30; x++) px[y * 30 + x] = (x * 37 + y * 101) % 256;
        var scores = SmartCrop.WindowEntropies(new LumaPlane(30, 10, px), out int side);
        Assert.Equal(10, side);
        Assert.Equal(21, scores.Length);
        Assert.Equal(0, scores[0], 12);
        Assert.Equal(20, Array.IndexOf(scores, scores.Max()));
    }

    [Fact]
    public void SmartCrop_OnUniformDetail_KeepsTheCentre()
    {
        using var flat = Solid(300, 100, new Rgb24(9, 9, 9));
        Assert.Equal(new CropBox(100, 0, 100), SmartCrop.Find(flat));
    }

    [Fact]
    public void Inspector_FindsDamagedPngChunksAndMissingJpegEnd()
    {
        using var img = Detailed(64, 64, 3);
        var png = PngBytes(img);
        Assert.True(ImageFileInspector.Inspect(png).Complete);
        var damaged = (byte[])png.Clone();
        damaged[png.Length / 2] ^= 0x55;
        var info = ImageFileInspector.Inspect(damaged);
        Assert.False(info.Complete);
        Assert.Contains("checksum", info.Problem, StringComparison.Ordinal);

        var jpg = JpegBytes(img);
        Assert.True(ImageFileInspector.Inspect(jpg).Complete);
        Assert.False(ImageFileInspector.Inspect(jpg.AsSpan(0, jpg.Length - 2)).Complete);
        Assert.Equal(ImageContainer.Unknown, ImageFileInspector.Sniff("hello"u8));
        Assert.Equal(0xAE426082u, ImageFileInspector.Crc32("IEND"u8));
    }

    [Fact]
    public void Inspector_CountsGifFramesAndSeesCmyk()
    {
        using var gif = new Image<Rgba32>(8, 8, new Rgba32(255, 0, 0));
        using var f = new Image<Rgba32>(8, 8, new Rgba32(0, 0, 255));
        gif.Frames.AddFrame(f.Frames.RootFrame);
        using var ms = new MemoryStream();
        gif.SaveAsGif(ms);
        var info = ImageFileInspector.Inspect(ms.ToArray());
        Assert.Equal((ImageContainer.Gif, true, 2), (info.Container, info.Complete, info.FrameCount));

        var cmyk = ImageFileInspector.Inspect(File.ReadAllBytes(Fixture("cmyk-red-blue.jpg")));
        Assert.True(cmyk.IsCmykJpeg);
        Assert.True(cmyk.Complete);
    }
}
