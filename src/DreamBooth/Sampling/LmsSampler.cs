using TorchSharp;
using static DreamBooth.HeldScalars;
using static TorchSharp.torch;

namespace DreamBooth.Sampling;

/// <summary>
/// Linear multistep (k-diffusion <c>sample_lms</c>) as diffusers <c>LMSDiscreteScheduler</c>: x ← x + Σ c_k d_k over the
/// last (up to 4) derivatives d = (x − x̂₀)/σ, with c_k the integral over [σ_i, σ_{i+1}] of the Lagrange basis polynomials.
/// </summary>
public sealed class LmsSampler : SamplerBase
{
    internal LmsSampler(SchedulerConfig config, SamplerOptions options) : base(Sampler.Lms, config, options) { }

    private protected override SamplingRun CreateRun(int steps)
    {
        var spacing = Spacing(TimestepSpacing.Linspace);
        var (t, sig) = KSchedule.Build(Config, KSchedule.TrainSigmas(Schedule), steps, spacing, float32Linspace: false, allowKarras: true, honourConfigSigmaRange: false);
        var sigmas = KSchedule.WithZero(sig);
        return new Run(this, steps, t, sigmas, SigmaInitNoise(sigmas, spacing));
    }

    sealed class Run(LmsSampler s, int steps, double[] timesteps, double[] sigmas, double init)
        : SamplingRun(s, steps, timesteps, false, sigmas, init, AddNoiseMode.Sigma)
    {
        readonly List<Tensor> _derivatives = [];

        private protected override Tensor ScaleModelInputCore(Tensor sample, int stepIndex)
        {
            float sigma = (float)SigmaValues![stepIndex];
            return ScaleBySigma(sample, sigma);
        }

        double Coefficient(int order, int t, int current)
        {
            var sg = SigmaValues!;
            double Basis(double tau)
            {
                double prod = 1.0;
                for (int k = 0; k < order; k++)
                {
                    if (k == current) continue;
                    prod *= (tau - sg[t - k]) / (sg[t - current] - sg[t - k]);
                }
                return prod;
            }
            return KSchedule.Integrate(Basis, sg[t], sg[t + 1]);
        }

        private protected override StepResult StepCore(Tensor modelOutput, int stepIndex, Tensor sample, INoiseSource? noise)
        {
            using var scope = torch.NewDisposeScope();
            float sigma = (float)SigmaValues![stepIndex];
            var x0 = PredictOriginalFromSigma(Sampler.Config.PredictionType, modelOutput, sample, sigma, sigma, "LMS");
            var derivative = Derivative(sample, x0, sigma);
            _derivatives.Add(Keep(derivative));
            int maxOrder = Sampler.Options.LmsOrder;
            while (_derivatives.Count > maxOrder) { Release(_derivatives[0]); _derivatives.RemoveAt(0); }
            int order = Math.Min(stepIndex + 1, maxOrder);
            // sample + sum(c_k * d_k) with the sum accumulated first, as diffusers does
            int terms = Math.Min(order, _derivatives.Count);
            Tensor? sum = null;
            for (int k = 0; k < terms; k++)
            {
                double c = Coefficient(order, stepIndex, k);
                var term = _derivatives[_derivatives.Count - 1 - k].Times((float)c);
                sum = sum is null ? term : sum.Plus(term);
            }
            var prev = sum is null ? sample.alias() : sample.Plus(sum);
            return new StepResult(prev.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
        }
    }
}
