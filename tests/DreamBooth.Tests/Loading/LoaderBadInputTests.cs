using System.Text;
using System.Text.Json.Nodes;
using DreamBooth.Loading;
using DreamBooth.Tests.Infrastructure;
using TorchSharp;

namespace DreamBooth.Tests.Loading;

/// <summary>Bad model input gives a <see cref="ModelLoadException"/> that names the file and what is wrong.</summary>
public class LoaderBadInputTests
{
    static string CopyFixture(TempDir dir, string fixture)
    {
        var src = TestPaths.ParityPath(fixture);
        var dst = Path.Combine(dir.Path, fixture);
        Directory.CreateDirectory(dst);
        foreach (var f in new[] { "config.json", "diffusion_pytorch_model.safetensors", "model.safetensors" })
            if (File.Exists(Path.Combine(src, f))) File.Copy(Path.Combine(src, f), Path.Combine(dst, f));
        return dst;
    }

    static ModelLoadException LoadUnetFails(string folder) =>
        Assert.Throws<ModelLoadException>(() => ComponentLoader.LoadUnet(folder).Dispose());

    [Fact]
    public void TruncatedSafetensorsNamesFileAndTruncation()
    {
        using var dir = TestPaths.NewTempDir();
        var unet = CopyFixture(dir, "unet-sd1-tiny");
        var w = Path.Combine(unet, "diffusion_pytorch_model.safetensors");
        var bytes = File.ReadAllBytes(w);
        File.WriteAllBytes(w, bytes[..(bytes.Length / 2)]);
        var e = LoadUnetFails(unet);
        Assert.Contains(w, e.Message);
        Assert.Contains("beyond the end of the data section", e.Message);
    }

    [Fact]
    public void FileShorterThanHeaderLength()
    {
        using var dir = TestPaths.NewTempDir();
        var unet = CopyFixture(dir, "unet-sd1-tiny");
        var w = Path.Combine(unet, "diffusion_pytorch_model.safetensors");
        File.WriteAllBytes(w, File.ReadAllBytes(w)[..100]);
        var e = LoadUnetFails(unet);
        Assert.Contains("truncated safetensors file", e.Message);
    }

    [Fact]
    public void CorruptHeaderJson()
    {
        using var dir = TestPaths.NewTempDir();
        var unet = CopyFixture(dir, "unet-sd1-tiny");
        var w = Path.Combine(unet, "diffusion_pytorch_model.safetensors");
        var bytes = File.ReadAllBytes(w);
        bytes[8] = (byte)'#';
        File.WriteAllBytes(w, bytes);
        var e = LoadUnetFails(unet);
        Assert.Contains("invalid JSON", e.Message);
    }

    [Fact]
    public void HeaderOffsetsOutOfRange()
    {
        using var dir = TestPaths.NewTempDir();
        var path = dir.File("bad.safetensors");
        var header = Encoding.UTF8.GetBytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,1600000]}}");
        using (var fs = File.Create(path))
        {
            fs.Write(BitConverter.GetBytes((ulong)header.Length));
            fs.Write(header);
            fs.Write(new byte[16]);
        }
        var e = Assert.Throws<ModelLoadException>(() => Safetensors.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("beyond the end", e.Message);
    }

    [Fact]
    public void HugeHeaderLengthIsRefusedWithoutAllocating()
    {
        using var dir = TestPaths.NewTempDir();
        var path = dir.File("huge.safetensors");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(ulong.MaxValue - 5), .. new byte[32]]);
        var e = Assert.Throws<ModelLoadException>(() => Safetensors.Load(path));
        Assert.Contains("header length", e.Message);
    }

    [Fact]
    public void ShapeAndOffsetsDisagree()
    {
        using var dir = TestPaths.NewTempDir();
        var path = dir.File("bad.safetensors");
        var header = Encoding.UTF8.GetBytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[0,16]}}");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((ulong)header.Length), .. header, .. new byte[16]]);
        var e = Assert.Throws<ModelLoadException>(() => Safetensors.Load(path));
        Assert.Contains("needs 20 bytes", e.Message);
    }

    [Fact]
    public void UnknownBlockTypeInConfig()
    {
        using var dir = TestPaths.NewTempDir();
        var unet = CopyFixture(dir, "unet-sd1-tiny");
        var cfgPath = Path.Combine(unet, "config.json");
        var cfg = JsonNode.Parse(File.ReadAllText(cfgPath))!;
        cfg["down_block_types"]![0] = "SimpleCrossAttnDownBlock2D";
        File.WriteAllText(cfgPath, cfg.ToJsonString());
        var e = LoadUnetFails(unet);
        Assert.Contains(cfgPath, e.Message);
        Assert.Contains("unknown or unsupported down block type 'SimpleCrossAttnDownBlock2D'", e.Message);
    }

    [Fact]
    public void InvalidConfigJsonNamesField()
    {
        using var dir = TestPaths.NewTempDir();
        var unet = CopyFixture(dir, "unet-sd1-tiny");
        var cfgPath = Path.Combine(unet, "config.json");
        var cfg = JsonNode.Parse(File.ReadAllText(cfgPath))!;
        cfg["layers_per_block"] = "two";
        File.WriteAllText(cfgPath, cfg.ToJsonString());
        var e = LoadUnetFails(unet);
        Assert.Contains("layers_per_block", e.Message);
    }

    [Fact]
    public void ConfigFromAnotherModelListsMismatchedTensors()
    {
        using var dir = TestPaths.NewTempDir();
        var unet = CopyFixture(dir, "unet-sd1-tiny");
        var cfgPath = Path.Combine(unet, "config.json");
        var cfg = JsonNode.Parse(File.ReadAllText(cfgPath))!;
        cfg["cross_attention_dim"] = 48;
        cfg["layers_per_block"] = 1;
        File.WriteAllText(cfgPath, cfg.ToJsonString());
        var e = LoadUnetFails(unet);
        Assert.Contains("diffusion_pytorch_model.safetensors", e.Message);
        Assert.Contains("unexpected", e.Message);
        Assert.Contains("wrong shape", e.Message);
        Assert.Contains("attn2.to_k.weight: file has [32, 32], model expects [32, 48]", e.Message);
    }

    [Fact]
    public void MissingTensorIsListed()
    {
        using var dir = TestPaths.NewTempDir();
        var unet = CopyFixture(dir, "unet-sd1-tiny");
        var w = Path.Combine(unet, "diffusion_pytorch_model.safetensors");
        var state = Safetensors.Load(w);
        state.Remove("conv_out.bias");
        Safetensors.Save(w, state);
        var e = LoadUnetFails(unet);
        Assert.Contains("1 missing: conv_out.bias", e.Message);
    }

    [Fact]
    public void FolderWithoutConfigIsNotAModel()
    {
        using var dir = TestPaths.NewTempDir();
        var e = LoadUnetFails(dir.Path);
        Assert.Contains("config.json is missing", e.Message);
        var e2 = LoadUnetFails(Path.Combine(dir.Path, "nope"));
        Assert.Contains("component folder not found", e2.Message);
    }

    [Fact]
    public void MissingWeights()
    {
        using var dir = TestPaths.NewTempDir();
        var unet = CopyFixture(dir, "unet-sd1-tiny");
        File.Delete(Path.Combine(unet, "diffusion_pytorch_model.safetensors"));
        var e = LoadUnetFails(unet);
        Assert.Contains("no weight file found", e.Message);
    }

    [Fact]
    public void Fp16WeightsLoadIntoFp32AndBf16Models()
    {
        using var dir = TestPaths.NewTempDir();
        var unet = CopyFixture(dir, "unet-sd1-tiny");
        var w = Path.Combine(unet, "diffusion_pytorch_model.safetensors");
        var state = Safetensors.Load(w);
        var half = state.ToDictionary(kv => kv.Key, kv => kv.Value.to(torch.ScalarType.Float16));
        File.Delete(w);
        Safetensors.Save(Path.Combine(unet, "diffusion_pytorch_model.fp16.safetensors"), half);
        using var m32 = ComponentLoader.LoadUnet(unet, variant: "fp16");
        Assert.Equal(torch.ScalarType.Float32, m32.DType);
        var w0 = m32.state_dict()["conv_in.weight"];
        Assert.True(torch.allclose(w0, state["conv_in.weight"], 1e-3, 1e-3));
        using var mbf = ComponentLoader.LoadUnet(unet, dtype: torch.ScalarType.BFloat16);
        Assert.Equal(torch.ScalarType.BFloat16, mbf.DType);
    }
}
