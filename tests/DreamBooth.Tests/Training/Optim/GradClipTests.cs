using DreamBooth.Training.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Tests.Training.Optim;

public class GradClipTests
{
    [Fact]
    public void ClipsByGlobalNormLikeTorch()
    {
        using var a = new Parameter(torch.zeros(2));
        using var b = new Parameter(torch.zeros(1));
        using var c = new Parameter(torch.zeros(3)); // no grad: ignored
        a.grad = torch.tensor(new[] { 3.0f, 4.0f });
        b.grad = torch.tensor(new[] { 12.0f });
        double total = GradClip.ClipGradNorm(new[] { a, b, c }, 6.5);
        Assert.Equal(13.0, total, 5);
        float coef = (float)(6.5 / (13.0 + 1e-6));
        Assert.Equal(3 * coef, a.grad!.data<float>()[0], 5);
        Assert.Equal(4 * coef, a.grad!.data<float>()[1], 5);
        Assert.Equal(12 * coef, b.grad!.data<float>()[0], 5);
        Assert.Null(c.grad);
        // Under the limit: unchanged.
        double total2 = GradClip.ClipGradNorm(new[] { a, b }, 100);
        Assert.Equal(6.5, total2, 4);
        Assert.Equal(3 * coef, a.grad!.data<float>()[0], 5);
    }

    [Fact]
    public void AccumulatesHalfPrecisionGradsInFp32()
    {
        using var p = new Parameter(torch.zeros(1000, ScalarType.Float16));
        p.grad = torch.full(1000, 300.0, ScalarType.Float16); // sum of squares 9e7 overflows fp16
        double total = GradClip.ClipGradNorm(new[] { p }, 1.0);
        Assert.Equal(300 * Math.Sqrt(1000), total, 0);
        Assert.Equal(ScalarType.Float16, p.grad!.dtype);
        Assert.Equal(1.0 / Math.Sqrt(1000), p.grad!.to(ScalarType.Float32)[0].item<float>(), 3);
    }

    [Fact]
    public void ReturnsNonFiniteNormWithoutTouchingGrads()
    {
        using var p = new Parameter(torch.zeros(2));
        p.grad = torch.tensor(new[] { float.PositiveInfinity, 1f });
        Assert.True(double.IsPositiveInfinity(GradClip.ClipGradNorm(new[] { p }, 1.0)));
        Assert.Equal(1f, p.grad!.data<float>()[1]);
        p.grad = torch.tensor(new[] { float.NaN, 1f });
        Assert.True(double.IsNaN(GradClip.ClipGradNorm(new[] { p }, 1.0)));
        Assert.Equal(1f, p.grad!.data<float>()[1]);
        Assert.Equal(0.0, GradClip.ClipGradNorm(Array.Empty<Parameter>(), 1.0));
        Assert.Throws<ArgumentOutOfRangeException>(() => GradClip.ClipGradNorm(new[] { p }, 0));
    }
}
