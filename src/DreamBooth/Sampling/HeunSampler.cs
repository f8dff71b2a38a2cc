using TorchSharp;
using static DreamBooth.HeldScalars;
using static TorchSharp.torch;

namespace DreamBooth.Sampling;

/// <summary>
/// Heun's 2nd-order method (Karras et al. 2022, algorithm 1; k-diffusion <c>sample_heun</c>) as diffusers
/// <c>HeunDiscreteScheduler</c>: two model evaluations per step, so <see cref="SamplingRun.Timesteps"/> is interleaved
/// [t₀, t₁, t₁, t₂, t₂, …] and sigmas [σ₀, σ₁, σ₁, …, 0]; the last step is a plain Euler step to σ = 0.
/// </summary>
public sealed class HeunSampler : SamplerBase
{
    internal HeunSampler(SchedulerConfig config, SamplerOptions options) : base(Sampler.Heun, config, options) { }

    public override int Order => 2;

    private protected override SamplingRun CreateRun(int steps)
    {
        var spacing = Spacing(TimestepSpacing.Linspace);
        var (t, sig) = KSchedule.Build(Config, KSchedule.TrainSigmas(Schedule), steps, spacing, float32Linspace: true, allowKarras: true, honourConfigSigmaRange: false);
        var s = KSchedule.WithZero(sig);
        var sigmas = new List<double> { s[0] };
        for (int i = 1; i < s.Length - 1; i++) { sigmas.Add(s[i]); sigmas.Add(s[i]); }
        sigmas.Add(s[^1]);
        var ts = new List<double> { SigmaSchedules.F32(t[0]) };
        for (int i = 1; i < t.Length; i++) { ts.Add(SigmaSchedules.F32(t[i])); ts.Add(SigmaSchedules.F32(t[i])); }
        var sa = sigmas.ToArray();
        return new Run(this, steps, ts.ToArray(), sa, SigmaInitNoise(sa, spacing));
    }

    sealed class Run(HeunSampler s, int steps, double[] timesteps, double[] sigmas, double init)
        : SamplingRun(s, steps, timesteps, false, sigmas, init, AddNoiseMode.Sigma)
    {
        Tensor? _prevDerivative, _sample;
        float? _dt;

        bool FirstOrder => _dt is null;

        private protected override Tensor ScaleModelInputCore(Tensor sample, int stepIndex)
        {
            float sigma = (float)SigmaValues![stepIndex];
            return ScaleBySigma(sample, sigma);
        }

        private protected override StepResult StepCore(Tensor modelOutput, int stepIndex, Tensor sample, INoiseSource? noise)
        {
            using var scope = torch.NewDisposeScope();
            var cfg = Sampler.Config;
            bool first = FirstOrder;
            float sigma, sigmaNext;
            if (first) { sigma = (float)SigmaValues![stepIndex]; sigmaNext = (float)SigmaValues[stepIndex + 1]; }
            else { sigma = (float)SigmaValues![stepIndex - 1]; sigmaNext = (float)SigmaValues[stepIndex]; }
            float sigmaHat = sigma; // gamma = 0
            float sigmaInput = first ? sigmaHat : sigmaNext;
            var x0 = PredictOriginalFromSigma(cfg.PredictionType, modelOutput, sample, sigmaInput, sigmaInput, "Heun");
            if (cfg.ClipSample ?? false)
                x0 = x0.Clamp(-cfg.ClipSampleRange, cfg.ClipSampleRange);
            Tensor prev;
            if (first)
            {
                var derivative = Derivative(sample, x0, sigmaHat);
                float dt = sigmaNext - sigmaHat;
                Release(_prevDerivative); Release(_sample);
                _prevDerivative = Keep(derivative);
                _sample = Keep(sample);
                _dt = dt;
                prev = EulerStep(sample, derivative, dt);
            }
            else
            {
                var derivative = Derivative(sample, x0, sigmaNext);
                derivative = _prevDerivative!.Plus(derivative).Over(2);
                float dt = _dt!.Value;
                prev = EulerStep(_sample!, derivative, dt);
                Release(_prevDerivative); Release(_sample);
                _prevDerivative = null; _sample = null; _dt = null;
            }
            return new StepResult(prev.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
        }
    }
}
