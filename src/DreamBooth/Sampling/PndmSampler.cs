using TorchSharp;
using static DreamBooth.HeldScalars;
using static TorchSharp.torch;

namespace DreamBooth.Sampling;

/// <summary>
/// PLMS — the pseudo linear multistep part of PNDM (Liu et al. 2022), as diffusers <c>PNDMScheduler</c> with
/// <c>skip_prk_steps</c>: the first timestep is evaluated twice (warm-up), then 2nd/3rd/4th-order Adams–Bashforth
/// combinations of the last ε predictions feed the DDIM-like transfer φ. Without <c>skip_prk_steps</c> the first
/// three steps are pseudo Runge–Kutta steps (4 evaluations each), as diffusers does.
/// </summary>
public sealed class PndmSampler : SamplerBase
{
    internal PndmSampler(SchedulerConfig config, SamplerOptions options) : base(Sampler.Pndm, config, options)
    {
        if (config.PredictionType == PredictionType.Sample)
            throw new NotSupportedException("PNDM supports prediction_type epsilon and v_prediction only.");
    }

    private protected override SamplingRun CreateRun(int steps)
    {
        var b = SigmaSchedules.PndmBaseTimesteps(Spacing(TimestepSpacing.Leading), Config.NumTrainTimesteps, steps, Config.StepsOffset);
        if (Config.SkipPrkSteps)
        {
            // plms = concat(b[:-1], b[-2:-1], b[-1:])[::-1]
            var plms = new List<long>();
            plms.AddRange(b.Take(b.Length - 1));
            if (b.Length >= 2) plms.Add(b[^2]);
            plms.Add(b[^1]);
            plms.Reverse();
            return new PndmRun(this, steps, plms.Select(v => (double)v).ToArray(), 0);
        }
        const int pndmOrder = 4;
        if (b.Length < pndmOrder)
            throw new ArgumentOutOfRangeException(nameof(steps), steps, "PNDM with Runge-Kutta warm-up (skip_prk_steps false) needs at least 4 steps.");
        long half = Config.NumTrainTimesteps / steps / 2;
        // prk = (repeat(b[-4:], 2) + tile([0, half], 4))[:-1].repeat(2)[1:-1][::-1]
        var last = b[^pndmOrder..];
        var rep = new List<long>();
        foreach (var v in last) { rep.Add(v); rep.Add(v + half); }
        rep.RemoveAt(rep.Count - 1);
        var twice = rep.SelectMany(v => new[] { v, v }).ToList();
        var prk = twice.Skip(1).Take(twice.Count - 2).Reverse().ToList();
        var plmsPart = b.Take(b.Length - 3).Reverse();
        var all = prk.Concat(plmsPart).Select(v => (double)v).ToArray();
        return new PndmRun(this, steps, all, prk.Count);
    }

    sealed class PndmRun(PndmSampler s, int steps, double[] timesteps, int prkCount)
        : SamplingRun(s, steps, timesteps, true, null, 1.0, AddNoiseMode.AlphaCumprod)
    {
        readonly List<Tensor> _ets = [];
        Tensor? _curSample;
        Tensor? _curModelOutput;
        int _counter;

        private protected override StepResult StepCore(Tensor modelOutput, int stepIndex, Tensor sample, INoiseSource? noise)
        {
            if (_counter < prkCount) return StepPrk(modelOutput, stepIndex, sample);
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
                eps = modelOutput.Plus(_ets[^1]).Over(2);
                sample = _curSample!;
            }
            else if (_ets.Count == 2)
                eps = (_ets[^1].Times(3) - _ets[^2]).Over(2);
            else if (_ets.Count == 3)
                eps = Lin(23, _ets[^1], -16, _ets[^2], 5, _ets[^3]).Over(12);
            else
                eps = Lin(55, _ets[^1], -59, _ets[^2], 37, _ets[^3], -9, _ets[^4]).Times(1.0f / 24);

            var prev = PrevSample(sample, t, prevT, eps);
            if (_counter == 1 && _curSample is not null) { var c = _curSample; _curSample = null; prev = prev.MoveToOuterDisposeScope(); Release(c); _counter++; return new StepResult(prev, null); }
            _counter++;
            return new StepResult(prev.MoveToOuterDisposeScope(), null);
        }

        /// <summary>One pseudo Runge–Kutta evaluation (4 per step): k₁/6 + k₂/3 + k₃/3 + k₄/6 over half steps.</summary>
        StepResult StepPrk(Tensor modelOutput, int stepIndex, Tensor sample)
        {
            using var scope = torch.NewDisposeScope();
            int ratio = Sampler.Config.NumTrainTimesteps / InferenceSteps;
            int t = (int)TimestepValues[stepIndex];
            int diffToPrev = _counter % 2 == 1 ? 0 : ratio / 2;
            int prevT = t - diffToPrev;
            t = (int)TimestepValues[_counter / 4 * 4];
            Tensor eps = modelOutput;
            switch (_counter % 4)
            {
                case 0:
                    SetCurOutput(_curModelOutput is null ? modelOutput.Times(1.0f / 6) : _curModelOutput.Plus(modelOutput.Times(1.0f / 6)));
                    _ets.Add(Keep(modelOutput));
                    Release(_curSample);
                    _curSample = Keep(sample);
                    break;
                case 1:
                case 2:
                    SetCurOutput(_curModelOutput!.Plus(modelOutput.Times(1.0f / 3)));
                    break;
                default:
                    eps = _curModelOutput!.Plus(modelOutput.Times(1.0f / 6));
                    SetCurOutput(null);
                    break;
            }
            var cur = _curSample ?? sample;
            var prev = PrevSample(cur, t, prevT, eps);
            _counter++;
            return new StepResult(prev.MoveToOuterDisposeScope(), null);
        }

        void SetCurOutput(Tensor? t)
        {
            var old = _curModelOutput;
            _curModelOutput = t is null ? null : Keep(t);
            Release(old);
        }

        /// <summary>PNDM's transfer φ(x_t, ε, t, t') (Liu et al. 2022, eq. 11).</summary>
        Tensor PrevSample(Tensor sample, int t, int prevT, Tensor modelOutput)
        {
            var cfg = Sampler.Config;
            var ac = KSchedule.AlphasCumprod(Sampler.Schedule);
            float finalAlpha = (cfg.SetAlphaToOne ?? false) ? 1f : ac[0];
            float aT = ac[t];
            float aPrev = prevT >= 0 ? ac[prevT] : finalAlpha;
            float betaT = 1 - aT, betaPrev = 1 - aPrev;
            if (cfg.PredictionType == PredictionType.VPrediction)
                modelOutput = Lin(MathF.Sqrt(aT), modelOutput, MathF.Sqrt(betaT), sample);
            float sampleCoeff = MathF.Pow(aPrev / aT, 0.5f);
            float denom = aT * MathF.Pow(betaPrev, 0.5f) + MathF.Pow(aT * betaT * aPrev, 0.5f);
            using var scaled = sample.Times(sampleCoeff);
            using var step = modelOutput.Times(aPrev - aT);
            using var stepOver = step.Over(denom);
            return scaled - stepOver;
        }
    }
}
