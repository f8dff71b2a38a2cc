using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Training.Optim;

/// <summary>
/// Writes float32 values into a bfloat16 / float16 tensor with stochastic rounding: a value between two representable
/// neighbours goes up with probability equal to its distance from the lower one. Updates far smaller than one ulp (a
/// learning rate of 1e-6 on a weight of 0.1) then survive on average instead of being rounded away, which is what lets
/// bf16 weights train without an fp32 master copy (Gupta et al. 2015; Zamirai et al. 2020). Deterministic for a seed.
/// </summary>
public static class StochasticRounding
{
    public static void CopyInto(Tensor target, Tensor source32, long seed)
    {
        if (target.dtype == ScalarType.Float32 || target.dtype == ScalarType.Float64)
        {
            target.copy_(source32);
            return;
        }
        int mantissaBits = target.dtype switch
        {
            ScalarType.BFloat16 => 7,
            ScalarType.Float16 => 10,
            _ => throw new ArgumentException($"stochastic rounding into {target.dtype} is not supported"),
        };
        using var scope = torch.NewDisposeScope();
        using var g = new Generator((ulong)seed, torch.CPU);
        var x = source32.to(ScalarType.Float32);
        var exponent = torch.floor(torch.log2(x.abs().clamp_min(1e-30)));
        var ulp = torch.pow(2.0f, exponent - mantissaBits);
        var down = torch.floor(x / ulp) * ulp;
        var frac = (x - down) / ulp;
        var u = torch.rand(x.shape, dtype: ScalarType.Float32, generator: g).to(x.device);
        var rounded = down + u.lt(frac).to(ScalarType.Float32) * ulp;
        target.copy_(rounded);
    }
}
