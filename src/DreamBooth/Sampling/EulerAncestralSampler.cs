using TorchSharp;
using static DreamBooth.HeldScalars;
using static TorchSharp.torch;

namespace DreamBooth.Sampling;

/// <summary>
/// Euler ancestral (k-diffusion <c>sample_euler_ancestral</c>) as diffusers <c>EulerAncestralDiscreteScheduler</c>:
/// an Euler step down to σ_down followed by fresh noise of scale σ_up, where σ_up² = σ_to²(σ_from² − σ_to²)/σ_from²
/// and σ_down² = σ_to² − σ_up². Draws noise the shape of the sample at every step.
/// </summary>
public sealed class EulerAncestralSampler : SamplerBase
{
    internal EulerAncestralSampler(SchedulerConfig config, SamplerOptions options) : base(Sampler.EulerAncestral, config, options) { }

    private protected override SamplingRun CreateRun(int steps)
    {
        var spacing = Spacing(TimestepSpacing.Linspace);
        var train = KSchedule.TrainSigmas(Schedule);
        var (t, sig) = KSchedule.Build(Config with { UseKarrasSigmas = false }, train, steps, spacing, float32Linspace: true, allowKarras: false, honourConfigSigmaRange: false);
        var sigmas = KSchedule.WithZero(sig);
        return new Run(this, steps, t.Select(SigmaSchedules.F32).ToArray(), sigmas, SigmaInitNoise(sigmas, spacing));
    }

    sealed class Run(EulerAncestralSampler s, int steps, double[] timesteps, double[] sigmas, double init)
        : SamplingRun(s, steps, timesteps, false, sigmas, init, AddNoiseMode.Sigma)
    {
        private protected override Tensor ScaleModelInputCore(Tensor sample, int stepIndex)
        {
            float sigma = (float)SigmaValues![stepIndex];
            return ScaleBySigma(sample, sigma);
        }

        private protected override StepResult StepCore(Tensor modelOutput, int stepIndex, Tensor sample, INoiseSource? noise)
        {
            using var scope = torch.NewDisposeScope();
            float sigma = (float)SigmaValues![stepIndex];
            var x0 = PredictOriginalFromSigma(Sampler.Config.PredictionType, modelOutput, sample, sigma, sigma, "Euler a");
            float from = sigma, to = (float)SigmaValues[stepIndex + 1];
            float up = MathF.Pow(to * to * (from * from - to * to) / (from * from), 0.5f);
            float down = MathF.Pow(to * to - up * up, 0.5f);
            var derivative = Derivative(sample, x0, sigma);
            float dt = down - sigma;
            var prev = EulerStep(sample, derivative, dt);
            var eps = Draw(noise, modelOutput, "Euler a");
            prev = EulerStep(prev, eps, up);
            return new StepResult(prev.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
        }
    }
}
