using TorchSharp;
using DreamBooth.Tests.Infrastructure;

namespace DreamBooth.Tests;

public class NativeEnvironmentTests
{
    [Fact]
    public void OneDnnIsOffUnlessTheUserTurnsItOn()
    {
        if (!OperatingSystem.IsLinux()) return; // the symbols are looked up by their Itanium-ABI names (Linux, macOS)
        if (Environment.GetEnvironmentVariable(NativeEnvironment.OneDnnVariable) is { Length: > 0 })
            Assert.Fail($"{NativeEnvironment.OneDnnVariable} is set in the test environment; unset it to test the default");
        Assert.False(NativeEnvironment.OneDnnEnabled);
        Assert.False(NativeEnvironment.ConfigureOneDnn());
        // convolutions still run (libtorch's own kernels) and agree with a direct computation
        var x = torch.arange(16f).reshape(1, 1, 4, 4);
        var w = torch.ones(1, 1, 2, 2);
        var y = torch.nn.functional.conv2d(x, w);
        Assert.Equal(0f + 1 + 4 + 5, y[0, 0, 0, 0].item<float>());
        Assert.Equal(10f + 11 + 14 + 15, y[0, 0, 2, 2].item<float>());
    }

    [Fact]
    public void OnlyALargeModelFixesTheMmapThreshold()
    {
        // the tiny model (20 MB) keeps glibc's default (twice as fast here); no test builds a model of 512 MiB or more
        using var model = DreamBooth.Loading.StableDiffusionModel.FromPretrained(Path.Combine(TestPaths.RepoRoot, "data", "models", "tiny-sd"));
        Assert.False(NativeEnvironment.ForModelOfSize(20L << 20));
    }
}
