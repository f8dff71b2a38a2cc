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
