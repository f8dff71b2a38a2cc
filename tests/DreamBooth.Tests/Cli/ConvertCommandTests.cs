using DreamBooth.Loading;
using DreamBooth.Tests.Infrastructure;
using TorchSharp;
using static DreamBooth.Tests.Cli.CliHarness;

namespace DreamBooth.Tests.Cli;

public class ConvertCommandTests
{
    static void AssertSameTensors(string expectedFile, string actualFile, torch.ScalarType? dtype = null)
    {
        var e = Safetensors.Load(expectedFile);
        var a = Safetensors.Load(actualFile);
        try
        {
            Assert.Equal(e.Keys.Order(StringComparer.Ordinal), a.Keys.Order(StringComparer.Ordinal));
            foreach (var (k, t) in e)
            {
                var want = dtype is { } d ? t.to(d) : t;
                Assert.True(want.dtype == a[k].dtype && want.shape.SequenceEqual(a[k].shape), $"{actualFile}: {k} dtype/shape differ");
                Assert.True(want.contiguous().bytes.SequenceEqual(a[k].contiguous().bytes), $"{actualFile}: {k} values differ");
            }
        }
        finally
        {
            foreach (var t in e.Values.Concat(a.Values)) t.Dispose();
        }
    }

    [Fact]
    public void DiffusersToSingleFileAndBackGivesTheSameTensors()
    {
        using var dir = TestPaths.NewTempDir();
        var single = dir.File("tiny.safetensors");
        var r = Run("convert", TinyFolder, single);
        Assert.True(r.Code == 0, r.ToString());
        Assert.Equal(single, r.Out.Trim());
        // the same keys and values as diffusers' own conversion script produced
        AssertSameTensors(Tiny("tiny-sd1.safetensors"), single);

        var back = dir.File("back");
        r = Run("convert", single, back, "--config", TinyFolder);
        Assert.True(r.Code == 0, r.ToString());
        AssertSameTensors(Path.Combine(TinyFolder, "unet", "diffusion_pytorch_model.safetensors"), Path.Combine(back, "unet", "diffusion_pytorch_model.safetensors"));
        AssertSameTensors(Path.Combine(TinyFolder, "vae", "diffusion_pytorch_model.safetensors"), Path.Combine(back, "vae", "diffusion_pytorch_model.safetensors"));
        AssertSameTensors(Path.Combine(TinyFolder, "text_encoder", "model.safetensors"), Path.Combine(back, "text_encoder", "model.safetensors"));
        foreach (var f in new[] { "vocab.json", "merges.txt" })
            Assert.Equal(File.ReadAllBytes(Path.Combine(TinyFolder, "tokenizer", f)), File.ReadAllBytes(Path.Combine(back, "tokenizer", f)));

        // the written folder is a model that loads, and converting it again gives the same single file
        using (var m = StableDiffusionModel.FromPretrained(back)) Assert.Equal(64 * 4, m.DefaultResolution);
        var again = dir.File("again.safetensors");
        Assert.Equal(0, Run("convert", back, again).Code);
        AssertSameTensors(single, again);
    }

    [Fact]
    public void SingleFileToFp16DiffusersFolderWithTokenizerOption()
    {
        using var dir = TestPaths.NewTempDir();
        var back = dir.File("half");
        // the tiny model's norm groups are not Stable Diffusion's 32; without a config folder that must be said
        var fail = Run("convert", Tiny("tiny-sd1.ckpt"), back, "--tokenizer", Path.Combine(TinyFolder, "tokenizer"));
        Assert.Equal(1, fail.Code);
        Assert.Contains("NormNumGroups", fail.Err);
        Assert.False(Directory.Exists(back));

        var r = Run("convert", Tiny("tiny-sd1.ckpt"), back, "--config", TinyFolder, "--dtype", "fp16");
        Assert.True(r.Code == 0, r.ToString());
        AssertSameTensors(Path.Combine(TinyFolder, "unet", "diffusion_pytorch_model.safetensors"), Path.Combine(back, "unet", "diffusion_pytorch_model.safetensors"), torch.ScalarType.Float16);
        Assert.True(File.Exists(Path.Combine(back, "scheduler", "scheduler_config.json")));
        Assert.True(File.Exists(Path.Combine(back, "model_index.json")));
    }

    [Fact]
    public void RefusesToOverwriteOrWriteCkpt()
    {
        using var dir = TestPaths.NewTempDir();
        File.WriteAllText(dir.File("exists.safetensors"), "x");
        var r = Run("convert", TinyFolder, dir.File("exists.safetensors"));
        Assert.Equal(1, r.Code);
        Assert.Contains("already exists", r.Err);
        r = Run("convert", TinyFolder, dir.File("x.ckpt"));
        Assert.Equal(1, r.Code);
        Assert.Contains(".safetensors", r.Err);
    }
}
