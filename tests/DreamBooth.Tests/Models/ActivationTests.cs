using DreamBooth.Models.Common;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace DreamBooth.Tests.Models;

/// <summary>The activations by name, against their formulas evaluated in double precision, element by element.</summary>
public class ActivationTests
{
    static readonly float[] Inputs = [-6f, -3.5f, -1.25f, -0.5f, -0.01f, 0f, 0.01f, 0.3f, 1f, 2.75f, 5f];

    [Theory]
    [InlineData("gelu_new")]
    [InlineData("gelu_pytorch_tanh")]
    [InlineData("quick_gelu")]
    [InlineData("silu")]
    [InlineData("gelu")]
    [InlineData("relu")]
    public void MatchesItsFormula(string name)
    {
        using var scope = NewDisposeScope();
        var got = Activations.Apply(name, tensor(Inputs)).data<float>().ToArray();
        for (var i = 0; i < Inputs.Length; i++)
        {
            double x = Inputs[i];
            var want = name switch
            {
                "gelu_new" or "gelu_pytorch_tanh" => 0.5 * x * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x))),
                "quick_gelu" => x / (1 + Math.Exp(-1.702 * x)),
                "silu" => x / (1 + Math.Exp(-x)),
                "gelu" => 0.5 * x * (1 + Erf(x / Math.Sqrt(2))),
                "relu" => Math.Max(0, x),
                _ => throw new ArgumentOutOfRangeException(nameof(name)),
            };
            Assert.True(Math.Abs(got[i] - want) <= 2e-6 * Math.Max(1, Math.Abs(want)), $"{name}({x}) = {got[i]}, expected {want}");
        }
    }

    [Fact]
    public void UnknownNameListsTheKnownOnes()
    {
        using var x = zeros(2);
        var e = Assert.Throws<ArgumentException>(() => Activations.Apply("mish", x));
        Assert.Contains("quick_gelu", e.Message);
    }

    // Abramowitz–Stegun 7.1.26 is only 1.5e-7 accurate; use the series / continued fraction split instead
    static double Erf(double x)
    {
        if (x < 0) return -Erf(-x);
        if (x < 3)
        {
            double sum = x, term = x, x2 = x * x;
            for (var n = 1; n < 200; n++)
            {
                term *= -x2 / n;
                var add = term / (2 * n + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17) break;
            }
            return 2 / Math.Sqrt(Math.PI) * sum;
        }
        // erfc continued fraction (Lentz) for x ≥ 3
        double f = x, c = x, d = 0, tiny = 1e-300;
        for (var k = 1; k < 200; k++)
        {
            var a = k / 2.0;
            d = x + a * d; if (Math.Abs(d) < tiny) d = tiny; d = 1 / d;
            c = x + a / c; if (Math.Abs(c) < tiny) c = tiny;
            var delta = c * d;
            f *= delta;
            if (Math.Abs(delta - 1) < 1e-16) break;
        }
        return 1 - Math.Exp(-x * x) / Math.Sqrt(Math.PI) / f;
    }
}
