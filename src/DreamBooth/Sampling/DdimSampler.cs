using TorchSharp;
using static DreamBooth.HeldScalars;
using static TorchSharp.torch;

namespace DreamBooth.Sampling;

/// <summary>
/// DDIM (Song et al. 2021, eq. 12) as diffusers <c>DDIMScheduler</c>: deterministic for η = 0, with
/// σ_t = η·√((1−ᾱ_prev)/(1−ᾱ_t)·(1−ᾱ_t/ᾱ_prev)) fresh noise otherwise. Integer timesteps; previous timestep t − T // n.
/// </summary>
public sealed class DdimSampler : SamplerBase
{
    internal DdimSampler(SchedulerConfig config, SamplerOptions options) : base(Sampler.Ddim, config, options) { }

    private protected override SamplingRun CreateRun(int steps)
    {
        var t = SigmaSchedules.DdimTimesteps(Spacing(TimestepSpacing.Leading), Config.NumTrainTimesteps, steps, Config.StepsOffset);
        return new DdimRun(this, steps, t.Select(v => (double)v).ToArray());
    }

    sealed class DdimRun(DdimSampler s, int steps, double[] timesteps)
        : SamplingRun(s, steps, timesteps, true, null, 1.0, AddNoiseMode.AlphaCumprod)
    {
        private protected override StepResult StepCore(Tensor modelOutput, int stepIndex, Tensor sample, INoiseSource? noise)
        {
            using var scope = torch.NewDisposeScope();
            var cfg = Sampler.Config;
            var opt = Sampler.Options;
            var ac = Sampler.Schedule.AlphasCumprodValues;
            float finalAlpha = (cfg.SetAlphaToOne ?? true) ? 1f : ac[0];
            int t = (int)TimestepValues[stepIndex];
            int prevT = t - cfg.NumTrainTimesteps / InferenceSteps;
            float aT = ac[t];
            float aPrev = prevT >= 0 ? ac[prevT] : finalAlpha;
            float betaT = 1 - aT;

            Tensor x0, eps;
            switch (cfg.PredictionType)
            {
                case PredictionType.Epsilon:
                    x0 = (sample - modelOutput.Times(MathF.Sqrt(betaT))).Over(MathF.Sqrt(aT));
                    eps = modelOutput;
                    break;
                case PredictionType.Sample:
                    x0 = modelOutput.alias();
                    eps = (sample - x0.Times(MathF.Sqrt(aT))).Over(MathF.Sqrt(betaT));
                    break;
                case PredictionType.VPrediction:
                    x0 = Lin(MathF.Sqrt(aT), sample, -MathF.Sqrt(betaT), modelOutput);
                    eps = Lin(MathF.Sqrt(aT), modelOutput, MathF.Sqrt(betaT), sample);
                    break;
                default:
                    throw new NotSupportedException($"prediction_type {cfg.PredictionType}");
            }
            if (cfg.ClipSample ?? true)
                x0 = x0.Clamp(-cfg.ClipSampleRange, cfg.ClipSampleRange);

            float betaPrev = 1 - aPrev;
            float variance = betaPrev / betaT * (1 - aT / aPrev);
            float std = (float)opt.Eta * MathF.Pow(variance, 0.5f);
            if (opt.UseClippedModelOutput)
                eps = (sample - x0.Times(MathF.Sqrt(aT))).Over(MathF.Sqrt(betaT));
            var prev = Lin(MathF.Sqrt(aPrev), x0, MathF.Pow(1 - aPrev - std * std, 0.5f), eps);
            if (opt.Eta > 0)
                prev = prev.Plus(Draw(noise, modelOutput, "DDIM with eta > 0").Times(std));
            return new StepResult(prev.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
        }
    }
}
