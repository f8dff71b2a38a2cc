using TorchSharp;
using static DreamBooth.HeldScalars;
using static TorchSharp.torch;

namespace DreamBooth.Sampling;

/// <summary>
/// Euler (Karras et al. 2022, algorithm 2; k-diffusion <c>sample_euler</c>) as diffusers <c>EulerDiscreteScheduler</c>:
/// x ← x + (x − x̂₀)/σ̂ · (σ_next − σ̂), with optional churn γ = min(S_churn/N, √2 − 1) inside [S_tmin, S_tmax].
/// </summary>
public sealed class EulerSampler : SamplerBase
{
    internal EulerSampler(SchedulerConfig config, SamplerOptions options) : base(Sampler.Euler, config, options) { }

    private protected override SamplingRun CreateRun(int steps)
    {
        var spacing = Spacing(TimestepSpacing.Linspace);
        var train = KSchedule.TrainSigmas(Schedule);
        double[] t, sig;
        if (Config.InterpolationType == InterpolationType.LogLinear && !Config.UseKarrasSigmas)
        {
            t = SigmaSchedules.KarrasStyleTimesteps(spacing, Config.NumTrainTimesteps, steps, Config.StepsOffset, true);
            // torch.linspace(log σ_T, log σ_0, n + 1).exp() in float32, as diffusers does
            using var scope = torch.NewDisposeScope();
            float lo = MathF.Log((float)train[^1]), hi = MathF.Log((float)train[0]);
            sig = torch.linspace(lo, hi, steps + 1, dtype: ScalarType.Float32).exp().data<float>().ToArray().Select(v => (double)v).ToArray();
        }
        else
            (t, sig) = KSchedule.Build(Config, train, steps, spacing, float32Linspace: true, allowKarras: true, honourConfigSigmaRange: true);
        var sigmas = KSchedule.WithZero(sig);
        double[] ts;
        if (Config.TimestepType == TimestepType.Continuous && Config.PredictionType == PredictionType.VPrediction)
            ts = sig.Select(s => (double)(0.25f * MathF.Log((float)s))).ToArray();
        else
            ts = t.Select(SigmaSchedules.F32).ToArray();
        return new EulerRun(this, steps, ts, sigmas, SigmaInitNoise(sigmas, spacing));
    }

    sealed class EulerRun(EulerSampler s, int steps, double[] timesteps, double[] sigmas, double init)
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
            var opt = Sampler.Options;
            float sigma = (float)SigmaValues![stepIndex];
            double gamma = opt.STmin <= sigma && sigma <= opt.STmax
                ? Math.Min(opt.SChurn / (SigmaValues.Length - 1), Math.Sqrt(2) - 1) : 0.0;
            float sigmaHat = (float)(sigma * (gamma + 1));
            if (gamma > 0)
            {
                var eps = Draw(noise, modelOutput, "Euler with churn").Times(opt.SNoise);
                sample = EulerStep(sample, eps, MathF.Pow(sigmaHat * sigmaHat - sigma * sigma, 0.5f));
            }
            var x0 = PredictOriginalFromSigma(Sampler.Config.PredictionType, modelOutput, sample, sigmaHat, sigma, "Euler");
            var derivative = Derivative(sample, x0, sigmaHat);
            float dt = (float)SigmaValues[stepIndex + 1] - sigmaHat;
            var prev = EulerStep(sample, derivative, dt);
            return new StepResult(prev.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
        }
    }
}
