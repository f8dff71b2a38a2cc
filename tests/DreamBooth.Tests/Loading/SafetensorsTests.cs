using DreamBooth.Loading;
using DreamBooth.Tests.Infrastructure;
using TorchSharp;

namespace DreamBooth.Tests.Loading;

public class SafetensorsTests
{
    [Fact]
    public void ReadsFixtureHeaderAndTensors()
    {
        var path = TestPaths.ParityPath("unet-sd1-tiny", "inputs.safetensors");
        var t = Safetensors.Load(path);
        Assert.Equal(new long[] { 2, 4, 16, 16 }, t["sample"].shape);
        Assert.Equal(torch.ScalarType.Int64, t["timestep"].dtype);
        Assert.Equal(new long[] { 981, 1 }, t["timestep"].data<long>().ToArray());
        foreach (var v in t.Values) v.Dispose();
    }

    [Fact]
    public void RoundTripsAllDtypes()
    {
        using var dir = TestPaths.NewTempDir();
        var src = new Dictionary<string, torch.Tensor>
        {
            ["a/f32"] = torch.randn(3, 5),
            ["b.f16"] = torch.randn(4).to(torch.ScalarType.Float16),
            ["c.bf16"] = torch.randn(2, 2).to(torch.ScalarType.BFloat16),
            ["d.i64"] = torch.arange(7),
            ["e.scalar"] = torch.tensor(3.5f),
            ["f.empty"] = torch.zeros(0, 3),
        };
        var path = dir.File("x.safetensors");
        Safetensors.Save(path, src, new Dictionary<string, string> { ["format"] = "pt" });
        var back = Safetensors.Load(path);
        Assert.Equal(src.Keys.OrderBy(k => k), back.Keys.OrderBy(k => k));
        foreach (var (k, v) in src)
        {
            Assert.Equal(v.dtype, back[k].dtype);
            Assert.Equal(v.shape, back[k].shape);
            Assert.True(v.to(torch.ScalarType.Float64).equal(back[k].to(torch.ScalarType.Float64)).all().item<bool>(), k);
        }
        Assert.Equal("pt", Safetensors.ReadHeader(path).Metadata["format"]);
        Assert.Equal(0, (Safetensors.ReadHeader(path).DataStart) % 8);
    }
}

public class SafetensorsHardeningTests
{
    static string WriteRaw(TempDir dir, string name, byte[] header, int dataBytes)
    {
        var path = dir.File(name);
        using var ms = new MemoryStream();
        ms.Write(BitConverter.GetBytes((ulong)header.Length));
        ms.Write(header);
        ms.Write(new byte[dataBytes]);
        File.WriteAllBytes(path, ms.ToArray());
        return path;
    }

    [Fact]
    public void RefusesInvalidUtf8NamesDuplicatesAndNonNumericOffsets()
    {
        using var dir = TestPaths.NewTempDir();
        var header = System.Text.Encoding.Latin1.GetBytes("{\"a\u00ff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}");
        Assert.Throws<ModelLoadException>(() => Safetensors.Load(WriteRaw(dir, "utf8.safetensors", header, 4)));
        var dup = System.Text.Encoding.UTF8.GetBytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}");
        Assert.Contains("twice", Assert.Throws<ModelLoadException>(() => Safetensors.Load(WriteRaw(dir, "dup.safetensors", dup, 8))).Message);
        var str = System.Text.Encoding.UTF8.GetBytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}");
        Assert.Contains("data_offsets", Assert.Throws<ModelLoadException>(() => Safetensors.Load(WriteRaw(dir, "str.safetensors", str, 4))).Message);
    }
}
