using DreamBooth.Cli;
using DreamBooth.Imaging;
using DreamBooth.Tests.Infrastructure;
using static DreamBooth.Tests.Cli.CliHarness;

namespace DreamBooth.Tests.Cli;

public class GenerateCommandTests
{
    [Fact]
    public void WritesNumberedPngsWhoseParametersReadBack()
    {
        using var dir = TestPaths.NewTempDir();
        var preset = GenerationOptions_LoadPresetText("simple");
        string[] args = ["generate", "--model", TinyFolder, "--prompt", "a photo of a (red:1.2) cat", "--negative-preset", "simple",
            "--width", "64", "--height", "48", "--steps", "3", "--cfg-scale", "5", "--sampler", "DPM++ 2M Karras", "--seed", "42",
            "--device", "cpu", "--out", dir.Path];
        var r = Run([.. args, "--batch-size", "2"]);
        Assert.True(r.Code == 0, r.ToString());
        var paths = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.Equal([dir.File("00001-42.png"), dir.File("00002-43.png")], paths);
        var p = PngInfo.ReadParameters(paths[0]);
        Assert.NotNull(p);
        Assert.Equal("a photo of a (red:1.2) cat", p.Prompt);
        Assert.Equal(preset, p.NegativePrompt);
        Assert.Equal(42, p.Seed);
        Assert.Equal(3, p.Steps);
        Assert.Equal("DPM++ 2M Karras", p.Sampler);
        Assert.Equal(5, p.CfgScale);
        Assert.Equal((64, 48), (p.Width, p.Height));
        Assert.Equal(43, PngInfo.ReadParameters(paths[1])!.Seed);
        using (var img = SixLabors.ImageSharp.Image.Load(paths[0])) Assert.Equal((64, 48), (img.Width, img.Height));
        Assert.Contains("sampling", r.Err); // progress on stderr, not stdout

        // never overwrites: a second run continues the numbering
        var again = Run(args);
        Assert.True(again.Code == 0, again.ToString());
        Assert.Equal(dir.File("00003-42.png"), again.Out.Trim());
        Assert.Equal(File.ReadAllBytes(paths[0]), File.ReadAllBytes(dir.File("00003-42.png"))); // same seed, same image
    }

    static string GenerationOptions_LoadPresetText(string name) =>
        NegativePromptPresets.Load(Path.Combine(TestPaths.RepoRoot, "data", "negative-prompts.json")).Get(name).Text;

    [Fact]
    public void ImageToImageFromASingleFileCheckpointWithItsConfigFolder()
    {
        using var dir = TestPaths.NewTempDir();
        var init = dir.File("init.png");
        using (var img = new SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>(70, 50, new SixLabors.ImageSharp.PixelFormats.Rgb24(200, 30, 30)))
            PngInfo.Save(img, init, null);
        var r = Run("generate", "--model", Tiny("tiny-sd1.ckpt"), "--config", TinyFolder, "--init-image", init, "--strength", "0.5",
            "--steps", "4", "--seed", "3", "--sampler", "DDIM", "--out", dir.File("out"));
        Assert.True(r.Code == 0, r.ToString());
        var p = PngInfo.ReadParameters(r.Out.Trim())!;
        Assert.Equal(0.5, p.DenoisingStrength);
        Assert.Equal((64, 48), (p.Width, p.Height)); // the init image's size rounded down to multiples of 8
    }

    [Theory]
    [InlineData("width must be a multiple of 8 (got 500)", "--width", "500")]
    [InlineData("height must be a multiple of 8 (got 30)", "--height", "30")]
    [InlineData("steps must be between 1 and 1000 (got 0)", "--steps", "0")]
    [InlineData("--dtype fp16 needs a CUDA GPU", "--dtype", "fp16", "--device", "cpu")]
    [InlineData("--device 'tpu' is not a device; use cpu, cuda or auto", "--device", "tpu")]
    [InlineData("Valid names: ", "--negative-preset", "nope")]
    public void BadOptionsGiveOneReadableErrorLine(string expected, params string[] extra)
    {
        using var dir = TestPaths.NewTempDir();
        var r = Run(["generate", "--model", TinyFolder, "--out", dir.Path, .. extra]);
        Assert.Equal(1, r.Code);
        Assert.StartsWith("error: ", r.Err);
        Assert.Contains(expected, r.Err);
        Assert.DoesNotContain("(Parameter '", r.Err);
        Assert.DoesNotContain("   at ", r.Err); // no stack trace
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Path));
    }

    [Fact]
    public void AnUnknownSamplerListsTheValidNames()
    {
        var r = Run("generate", "--model", TinyFolder, "--sampler", "Eulr a");
        Assert.Equal(1, r.Code);
        Assert.Contains("Unknown sampler 'Eulr a'", r.Err);
        foreach (var name in new[] { "\"Euler a\"", "\"DPM++ 2M Karras\"", "\"DDIM\"", "\"UniPC\"" }) Assert.Contains(name, r.Err);
    }

    [Fact]
    public void ASingleFileWithoutTokenizerSaysWhatIsNeeded()
    {
        var r = Run("generate", "--model", Tiny("tiny-sd1.safetensors"), "--steps", "1");
        Assert.Equal(1, r.Code);
        Assert.Contains("holds no tokenizer", r.Err);
        Assert.Contains("--tokenizer", r.Err);
        Assert.Contains("CLIP ViT-L/14", r.Err);
    }

    [Fact]
    public void AMissingModelIsNamed()
    {
        var r = Run("generate", "--model", "./no/such/model", "--steps", "1");
        Assert.Equal(1, r.Code);
        Assert.Contains("no/such/model", r.Err);
        Assert.Contains("not found", r.Err);
    }
}
