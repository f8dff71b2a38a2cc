using TorchSharp;
using static DreamBooth.HeldScalars;
using static TorchSharp.torch;

namespace DreamBooth.Sampling;

/// <summary>
/// DDPM ancestral sampling (Ho et al. 2020, algorithm 2), as diffusers <c>DDPMScheduler</c>: posterior mean from the
/// x₀ estimate plus variance_type noise at every t &gt; 0. Integer timesteps; the previous timestep is t − T // n.
/// </summary>
public sealed class DdpmSampler : SamplerBase
{
    internal DdpmSampler(SchedulerConfig config, SamplerOptions options) : base(Sampler.Ddpm, config, options)
    {
        if (config.VarianceType == Sampling.VarianceType.FixedLargeLog)
            throw new NotSupportedException("variance_type fixed_large_log is not supported by the DDPM sampler (diffusers takes the square root of a log there); use fixed_small or fixed_large.");
    }

    private protected override SamplingRun CreateRun(int steps)
    {
        var t = SigmaSchedules.DdimTimesteps(Spacing(TimestepSpacing.Leading), Config.NumTrainTimesteps, steps, Config.StepsOffset);
        return new DdpmRun(this, steps, t.Select(v => (double)v).ToArray());
    }

    sealed class DdpmRun(DdpmSampler s, int steps, double[] timesteps)
        : SamplingRun(s, steps, timesteps, true, null, 1.0, AddNoiseMode.AlphaCumprod)
    {
        private protected override StepResult StepCore(Tensor modelOutput, int stepIndex, Tensor sample, INoiseSource? noise)
        {
            using var scope = torch.NewDisposeScope();
            var cfg = Sampler.Config;
            var ac = Sampler.Schedule.AlphasCumprodValues;
            int t = (int)TimestepValues[stepIndex];
            int prevT = t - cfg.NumTrainTimesteps / InferenceSteps;
            var vt = cfg.VarianceType ?? VarianceType.FixedSmall;

            Tensor? predictedVariance = null;
            if (modelOutput.shape[1] == sample.shape[1] * 2 && vt is VarianceType.Learned or VarianceType.LearnedRange)
            {
                var parts = modelOutput.split(sample.shape[1], 1);
                modelOutput = parts[0];
                predictedVariance = parts[1];
            }

            float aT = ac[t];
            float aPrev = prevT >= 0 ? ac[prevT] : 1f;
            float betaT = 1 - aT, betaPrev = 1 - aPrev;
            float curAlpha = aT / aPrev, curBeta = 1 - curAlpha;

            Tensor x0 = cfg.PredictionType switch
            {
                PredictionType.Epsilon => (sample - modelOutput.Times(MathF.Sqrt(betaT))).Over(MathF.Sqrt(aT)),
                PredictionType.Sample => modelOutput.alias(),
                PredictionType.VPrediction => Lin(MathF.Sqrt(aT), sample, -MathF.Sqrt(betaT), modelOutput),
                _ => throw new NotSupportedException($"prediction_type {cfg.PredictionType}"),
            };
            if (cfg.ClipSample ?? true)
                x0 = x0.Clamp(-cfg.ClipSampleRange, cfg.ClipSampleRange);

            float x0Coeff = MathF.Sqrt(aPrev) * curBeta / betaT;
            float sampleCoeff = MathF.Sqrt(curAlpha) * betaPrev / betaT;
            var prev = Lin(x0Coeff, x0, sampleCoeff, sample);

            if (t > 0)
            {
                var eps = Draw(noise, modelOutput, "DDPM");
                float variance = MathF.Max((1 - aPrev) / (1 - aT) * curBeta, 1e-20f);
                Tensor add = vt switch
                {
                    VarianceType.FixedSmall => eps.Times(MathF.Pow(variance, 0.5f)),
                    VarianceType.FixedSmallLog => eps.Times(MathF.Exp(0.5f * MathF.Log(variance))),
                    VarianceType.FixedLarge => eps.Times(MathF.Pow(curBeta, 0.5f)),
                    VarianceType.Learned => predictedVariance is null ? throw new ArgumentException("variance_type learned needs a model output with twice the sample's channels.") : predictedVariance.Power(0.5) * eps,
                    VarianceType.LearnedRange => predictedVariance is null
                        ? throw new ArgumentException("variance_type learned_range needs a model output with twice the sample's channels.")
                        : LearnedRangeStd(predictedVariance, curBeta, variance) * eps,
                    _ => throw new NotSupportedException($"variance_type {vt}"),
                };
                prev = prev.Plus(add);
            }
            return new StepResult(prev.MoveToOuterDisposeScope(), x0.MoveToOuterDisposeScope());
        }

        /// <summary>learned_range: exp(½·(f·log β_t + (1 − f)·log σ²)) with f = (v + 1)/2, v the model's variance output.</summary>
        static Tensor LearnedRangeStd(Tensor predictedVariance, float curBeta, float variance)
        {
            using var frac = predictedVariance.Shift(1).Over(2);
            using var rest = From(1, frac);
            using var logVar = Lin(MathF.Log(curBeta), frac, MathF.Log(variance), rest);
            using var half = logVar.Times(0.5);
            return torch.exp(half);
        }
    }
}
