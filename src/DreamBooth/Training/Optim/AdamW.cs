using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Training.Optim;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter 2019, "Decoupled Weight Decay Regularization") written out op for op as
/// PyTorch's <c>torch.optim.AdamW</c> (single-tensor path): <c>p *= 1 - lr·wd</c>; <c>m.lerp_(g, 1-β1)</c>;
/// <c>v = β2·v + (1-β2)·g²</c>; <c>p -= lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + eps)</c>.
/// State (exp_avg, exp_avg_sq) is kept in the parameter's dtype, as PyTorch does. Owning the state (rather
/// than using TorchSharp's optimizer) lets checkpoints store it as plain named tensors.
/// </summary>
public sealed class AdamW : AdamWBase
{
    private sealed class State : ParamState
    {
        public required Tensor ExpAvg;
        public required Tensor ExpAvgSq;

        public override void Save(Dictionary<string, Tensor> into, string prefix)
        {
            into[prefix + "exp_avg"] = ExpAvg.detach().clone().DetachFromDisposeScope();
            into[prefix + "exp_avg_sq"] = ExpAvgSq.detach().clone().DetachFromDisposeScope();
        }

        public override long Bytes => BytesOf(ExpAvg) + BytesOf(ExpAvgSq);

        public override void Dispose()
        {
            ExpAvg.Dispose();
            ExpAvgSq.Dispose();
        }
    }

    /// <summary>Creates the optimizer over <paramref name="groups"/> (each with its own learning rate).</summary>
    public AdamW(IEnumerable<ParameterGroup> groups, AdamWOptions? options = null) : base(groups, options) { }

    /// <summary>Convenience: one group named "params".</summary>
    public AdamW(IEnumerable<Parameter> parameters, double learningRate, AdamWOptions? options = null)
        : base(new[] { new ParameterGroup("params", parameters, learningRate) }, options) { }

    /// <inheritdoc />
    protected override ParamState CreateState(Parameter p) => new State
    {
        ExpAvg = torch.zeros_like(p, dtype: StateType(p)).DetachFromDisposeScope(),
        ExpAvgSq = torch.zeros_like(p, dtype: StateType(p)).DetachFromDisposeScope(),
    };

    /// <inheritdoc />
    protected override void Update(Parameter p, Tensor grad, ParamState state, double lr, double weightDecay)
    {
        var s = (State)state;
        double beta1 = Options.Beta1, beta2 = Options.Beta2;
        if (p.dtype is ScalarType.BFloat16 or ScalarType.Float16)
        {
            // low-precision weights: update in float32 (state is float32 too), write back with stochastic rounding,
            // slice by slice so the float32 copies stay small
            var pf = p.view(-1);
            var gf = grad.reshape(-1);
            var mf = s.ExpAvg.view(-1);
            var vf = s.ExpAvgSq.view(-1);
            ForEachChunk(pf.numel(), 1, (a, len, k) =>
            {
                var pv = pf.narrow(0, a, len);
                var p32 = pv.to(ScalarType.Float32);
                ApplyAdamW(p32, gf.narrow(0, a, len).to(ScalarType.Float32), mf.narrow(0, a, len), vf.narrow(0, a, len), s.Step, lr, weightDecay, beta1, beta2, Options.Eps);
                StochasticRounding.CopyInto(pv, p32, ChunkRoundingSeed(k));
            });
            return;
        }
        ApplyAdamW(p, grad, s.ExpAvg, s.ExpAvgSq, s.Step, lr, weightDecay, beta1, beta2, Options.Eps);
    }

    /// <summary>The in-place AdamW update shared with <see cref="AdamW8bit"/> (PyTorch's op order).</summary>
    internal static void ApplyAdamW(Tensor param, Tensor grad, Tensor expAvg, Tensor expAvgSq, long step,
        double lr, double weightDecay, double beta1, double beta2, double eps)
    {
        // Every Scalar (and the lerp weight) is created explicitly and held by `using` until the calls that read it have
        // returned. An implicit double → Scalar conversion leaves a temporary that nothing references once its handle is
        // passed on, so the garbage collector may finalize (free) it while libtorch still reads it — seen in a 1,200-step
        // DreamBooth run as "Expected false to be true" from c10::Scalar::toDouble in mul_ (GradClip has the same fix).
        // Same values, same results.
        double biasCorrection1 = 1 - Math.Pow(beta1, step);
        double biasCorrection2 = 1 - Math.Pow(beta2, step);
        double stepSize = lr / biasCorrection1;
        double biasCorrection2Sqrt = Math.Sqrt(biasCorrection2);
        using var decay = (1 - lr * weightDecay).ToScalar();
        using Tensor oneMinusBeta1 = 1 - beta1; // lerp_ takes its weight as a tensor (0-dim, as the implicit conversion makes it)
        using var beta2Scalar = beta2.ToScalar();
        using var oneMinusBeta2 = (1 - beta2).ToScalar();
        using var correction2Sqrt = biasCorrection2Sqrt.ToScalar();
        using var epsScalar = eps.ToScalar();
        using var negativeStepSize = (-stepSize).ToScalar();
        param.mul_(decay);
        expAvg.lerp_(grad, oneMinusBeta1);
        expAvgSq.mul_(beta2Scalar).addcmul_(grad, grad, oneMinusBeta2);
        using var denom = expAvgSq.sqrt().div_(correction2Sqrt).add_(epsScalar);
        param.addcdiv_(expAvg, denom, negativeStepSize);
    }

    static ScalarType StateType(Parameter p) => p.dtype is ScalarType.BFloat16 or ScalarType.Float16 ? ScalarType.Float32 : p.dtype;

    /// <inheritdoc />
    protected override ParamState LoadState(Parameter p, string where, string prefix, IReadOnlyDictionary<string, Tensor> dict, HashSet<string> consumed)
    {
        var m = ReadTensor(dict, prefix + "exp_avg", where, p.shape, StateType(p), p.device, consumed);
        try
        {
            var v = ReadTensor(dict, prefix + "exp_avg_sq", where, p.shape, StateType(p), p.device, consumed);
            return new State { ExpAvg = m, ExpAvgSq = v };
        }
        catch { m.Dispose(); throw; }
    }
}
