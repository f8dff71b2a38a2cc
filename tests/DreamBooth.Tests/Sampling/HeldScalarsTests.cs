using DreamBooth.Tests.Infrastructure;
using TorchSharp;
using Xunit;
using static DreamBooth.HeldScalars;
using static TorchSharp.torch;

namespace DreamBooth.Tests.Sampling;

/// <summary>
/// The held-Scalar helpers the samplers and the noise schedule compute with are the very operations of the operator
/// expressions they replace: bit-identical results on awkward values (signed zeros, subnormals, large magnitudes).
/// </summary>
public class HeldScalarsTests
{
    static Tensor Values(int seed)
    {
        var g = new Generator((ulong)seed);
        var t = randn([4, 3, 5, 5], generator: g) * 3;
        t[0, 0, 0, 0] = tensor(0f);
        t[0, 0, 0, 1] = tensor(-0f);
        t[0, 0, 0, 2] = tensor(1e-40f);
        t[0, 0, 0, 3] = tensor(-3e38f);
        return t;
    }

    [Fact]
    public void LinearCombinationsEqualTheOperatorExpressions()
    {
        using var scope = NewDisposeScope();
        var (x, y, z, w) = (Values(1), Values(2), Values(3), Values(4));
        float a = 0.8187f, b = -0.3183f, c = 1.0e-3f, d = 7.25f;
        Assert.True(TensorAssert.BitEqual(a * x + b * y, Lin(a, x, b, y)));
        Assert.True(TensorAssert.BitEqual(a * x - b * y, Lin(a, x, -b, y)), "a difference is a sum with a negated coefficient");
        Assert.True(TensorAssert.BitEqual(a * x - b * y + c * z, Lin(a, x, -b, y, c, z)));
        Assert.True(TensorAssert.BitEqual(a * x + b * y - c * z - d * w, Lin(a, x, b, y, -c, z, -d, w)));
    }

    [Fact]
    public void ScalarOperationsEqualTheOperators()
    {
        using var scope = NewDisposeScope();
        var x = Values(5);
        var p = x.abs();
        float c = 0.61803f;
        Assert.True(TensorAssert.BitEqual(x * c, x.Times(c)));
        Assert.True(TensorAssert.BitEqual(x / c, x.Over(c)));
        Assert.True(TensorAssert.BitEqual(x + c, x.Shift(c)));
        Assert.True(TensorAssert.BitEqual(1.0f - x, From(1.0f, x)));
        Assert.True(TensorAssert.BitEqual(p.pow(0.5), p.Power(0.5)));
        Assert.True(TensorAssert.BitEqual(x.pow(2), x.Power(2)));
        Assert.True(TensorAssert.BitEqual(x.clamp(-1.5, 2.0), x.Clamp(-1.5, 2.0)));
        Assert.True(TensorAssert.BitEqual(x + p, x.Plus(p)));
    }
}
