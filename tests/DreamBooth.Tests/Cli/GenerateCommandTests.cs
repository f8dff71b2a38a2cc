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

public class GridCommandTests
{
    [Fact]
    public void WritesOneGridPngWithTheFirstCellsInfotext()
    {
        using var dir = TestPaths.NewTempDir();
        var r = Run("grid", "--model", TinyFolder, "--prompt", "a red cat", "--width", "32", "--height", "32", "--steps", "2",
            "--x-type", "sampler", "--x-values", "Euler a,DDIM", "--y-type", "seed", "--y-values", "7-8", "--z-type", "cfg-scale", "--z-values", "3,6",
            "--out", dir.Path);
        Assert.True(r.Code == 0, r.ToString());
        var path = r.Out.Trim();
        Assert.Equal(dir.File("00001-7-grid.png"), path);
        var p = PngInfo.ReadParameters(path)!;
        Assert.Equal((7L, "Euler a", 3.0), (p.Seed, p.Sampler, p.CfgScale));
        using var img = SixLabors.ImageSharp.Image.Load(path);
        Assert.True(img.Width >= 2 * 2 * 32 && img.Height >= 2 * 32, $"{img.Width}x{img.Height}");
        Assert.Single(Directory.EnumerateFiles(dir.Path)); // the cells are not saved separately
    }

    [Theory]
    [InlineData("a grid needs at least two axes", "--x-type", "seed", "--x-values", "1,2")]
    [InlineData("--x-type 'colour' is not an axis type", "--x-type", "colour", "--x-values", "1", "--y-type", "seed", "--y-values", "1")]
    [InlineData("--y-type and --y-values go together", "--x-type", "seed", "--x-values", "1", "--y-type", "steps")]
    [InlineData("Valid names", "--x-type", "sampler", "--x-values", "Euler a,Warp", "--y-type", "seed", "--y-values", "1")]
    [InlineData("\"Steps\": \"x\" is not a whole number", "--x-type", "steps", "--x-values", "x", "--y-type", "seed", "--y-values", "1")]
    public void BadAxesAreExplained(string expected, params string[] axes)
    {
        var r = Run(["grid", "--model", TinyFolder, .. axes]);
        Assert.Equal(1, r.Code);
        Assert.Contains(expected, r.Err);
    }
}

public class GenerateLoraTests
{
    [Fact]
    public void ALoraFileChangesTheImageAndIsRecordedInTheInfotext()
    {
        using var dir = TestPaths.NewTempDir();
        var file = dir.File("my-lora.safetensors");
        using (var model = DreamBooth.Loading.StableDiffusionModel.FromPretrained(TinyFolder))
        using (var net = DreamBooth.Models.Common.LoraNetwork.Attach(model.Unet, "unet", rank: 2, alpha: 2))
        {
            var g = new TorchSharp.torch.Generator(7);
            using (TorchSharp.torch.no_grad())
                foreach (var p in net.Parameters()) p.copy_(TorchSharp.torch.randn(p.shape, generator: g) * 0.5);
            DreamBooth.Loading.LoraFiles.Save(file, DreamBooth.Loading.LoraFormat.Kohya, net);
        }
        string[] common = ["generate", "--model", TinyFolder, "--prompt", "a cat", "--width", "32", "--height", "32", "--steps", "2", "--seed", "11"];
        var plain = Run([.. common, "--out", dir.File("plain")]);
        var withLora = Run([.. common, "--lora", file, "--lora-scale", "0.8", "--out", dir.File("lora")]);
        Assert.True(plain.Code == 0 && withLora.Code == 0, plain.ToString() + withLora);
        Assert.NotEqual(File.ReadAllBytes(plain.Out.Trim()), File.ReadAllBytes(withLora.Out.Trim()));
        Assert.Equal("my-lora: 0.8", PngInfo.ReadParameters(withLora.Out.Trim())!.GetExtra("Lora"));
        Assert.Null(PngInfo.ReadParameters(plain.Out.Trim())!.GetExtra("Lora"));

        var asModel = Run("generate", "--model", file, "--steps", "1");
        Assert.Equal(1, asModel.Code);
        Assert.Contains("this is a LoRA file, not a model", asModel.Err);

        var missing = Run([.. common, "--lora", dir.File("nope.safetensors")]);
        Assert.Equal(1, missing.Code);
        Assert.Contains("nope.safetensors: file not found", missing.Err);
    }
}
