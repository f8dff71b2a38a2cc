using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Sampling;

/// <summary>
/// PLMS — the pseudo linear multistep part of PNDM (Liu et al. 2022), as diffusers <c>PNDMScheduler</c> with
/// <c>skip_prk_steps</c>: the first timestep is evaluated twice (warm-up), then 2nd/3rd/4th-order Adams–Bashforth
/// combinations of the last ε predictions feed the DDIM-like transfer φ.
/// </summary>
public sealed class PndmSampler : SamplerBase
{
    internal PndmSampler(SchedulerConfig config, SamplerOptions options) : base(Sampler.Pndm, config, options)
    {
        if (!config.SkipPrkSteps)
            throw new NotSupportedException("PNDM with skip_prk_steps false (Runge-Kutta warm-up) is not implemented; set skip_prk_steps true (what Stable Diffusion uses: PLMS).");
        if (config.PredictionType == PredictionType.Sample)
            throw new NotSupportedException("PNDM supports prediction_type epsilon and v_prediction only.");
    }

    private protected override SamplingRun CreateRun(int steps)
    {
        var b = SigmaSchedules.PndmBaseTimesteps(Spacing(TimestepSpacing.Leading), Config.NumTrainTimesteps, steps, Config.StepsOffset);
        // plms = concat(b[:-1], b[-2:-1], b[-1:])[::-1]
        var plms = new List<long>();
        plms.AddRange(b.Take(b.Length - 1));
        if (b.Length >= 2) plms.Add(b[^2]);
        plms.Add(b[^1]);
        plms.Reverse();
        return new PndmRun(this, steps, plms.Select(v => (double)v).ToArray());
    }

    sealed class PndmRun(PndmSampler s, int steps, double[] timesteps)
        : SamplingRun(s, steps, timesteps, true, null, 1.0, AddNoiseMode.AlphaCumprod)
    {
        readonly List<Tensor> _ets = [];
        Tensor? _curSample;
        int _counter;

        private protected override StepResult StepCore(Tensor modelOutput, int stepIndex, Tensor sample, INoiseSource? noise)
        {
            using var scope = torch.NewDisposeScope();
            var cfg = Sampler.Config;
            int ratio = cfg.NumTrainTimesteps / InferenceSteps;
            int t = (int)TimestepValues[stepIndex];
            int prevT = t - ratio;
            if (_counter != 1)
            {
                while (_ets.Count > 3) { Release(_ets[0]); _ets.RemoveAt(0); }
                _ets.Add(Keep(modelOutput));
            }
            else
            {
                prevT = t;
                t += ratio;
            }

            Tensor eps;
            if (_ets.Count == 1 && _counter == 0)
            {
                eps = modelOutput;
                _curSample = Keep(sample);
            }
            else if (_ets.Count == 1 && _counter == 1)
            {
                eps = (modelOutput + _ets[^1]) / 2;
                sample = _curSample!;
            }
            else if (_ets.Count == 2)
                eps = (3 * _ets[^1] - _ets[^2]) / 2;
            else if (_ets.Count == 3)
                eps = (23 * _ets[^1] - 16 * _ets[^2] + 5 * _ets[^3]) / 12;
            else
                eps = (1.0f / 24) * (55 * _ets[^1] - 59 * _ets[^2] + 37 * _ets[^3] - 9 * _ets[^4]);

            var prev = PrevSample(sample, t, prevT, eps);
            if (_counter == 1 && _curSample is not null) { var c = _curSample; _curSample = null; prev = prev.MoveToOuterDisposeScope(); Release(c); _counter++; return new StepResult(prev, null); }
            _counter++;
            return new StepResult(prev.MoveToOuterDisposeScope(), null);
        }

        /// <summary>PNDM's transfer φ(x_t, ε, t, t') (Liu et al. 2022, eq. 11).</summary>
        Tensor PrevSample(Tensor sample, int t, int prevT, Tensor modelOutput)
        {
            var cfg = Sampler.Config;
            var ac = Sampler.Schedule.AlphasCumprodValues;
            float finalAlpha = (cfg.SetAlphaToOne ?? false) ? 1f : ac[0];
            float aT = ac[t];
            float aPrev = prevT >= 0 ? ac[prevT] : finalAlpha;
            float betaT = 1 - aT, betaPrev = 1 - aPrev;
            if (cfg.PredictionType == PredictionType.VPrediction)
                modelOutput = MathF.Sqrt(aT) * modelOutput + MathF.Sqrt(betaT) * sample;
            float sampleCoeff = MathF.Pow(aPrev / aT, 0.5f);
            float denom = aT * MathF.Pow(betaPrev, 0.5f) + MathF.Pow(aT * betaT * aPrev, 0.5f);
            return sampleCoeff * sample - (aPrev - aT) * modelOutput / denom;
        }
    }
}
