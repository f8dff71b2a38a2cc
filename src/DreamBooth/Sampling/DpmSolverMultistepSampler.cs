using TorchSharp;
using static TorchSharp.torch;
using static DreamBooth.HeldScalars;

namespace DreamBooth.Sampling;

/// <summary>
/// DPM-Solver / DPM-Solver++ multistep (Lu et al. 2022, arXiv 2206.00927 and 2211.01095) as diffusers
/// <c>DPMSolverMultistepScheduler</c>: orders 1–3, ODE or SDE variants, midpoint/heun second-order rule, lower-order
/// final steps; "DPM++ 2M (Karras)" is dpmsolver++ order 2 (with Karras sigmas).
/// </summary>
public sealed class DpmSolverMultistepSampler : SamplerBase
{
    readonly DpmAlgorithmType _algorithm;
    readonly DpmSolverType _solverType;

    internal DpmSolverMultistepSampler(Sampler kind, SchedulerConfig config, SamplerOptions options) : base(kind, config, options)
    {
        _algorithm = config.AlgorithmType == DpmAlgorithmType.Deis ? DpmAlgorithmType.DpmSolverPlusPlus : config.AlgorithmType;
        _solverType = config.SolverType switch
        {
            null or DpmSolverType.Midpoint or DpmSolverType.LogRho or DpmSolverType.Bh1 or DpmSolverType.Bh2 => DpmSolverType.Midpoint,
            _ => DpmSolverType.Heun,
        };
        if (_algorithm is not (DpmAlgorithmType.DpmSolverPlusPlus or DpmAlgorithmType.SdeDpmSolverPlusPlus)
            && (config.FinalSigmasType ?? FinalSigmasType.Zero) == FinalSigmasType.Zero)
            throw new ArgumentException($"final_sigmas_type zero is not supported with algorithm_type {config.AlgorithmType}; set final_sigmas_type to sigma_min (as diffusers requires).");
        if (config.VarianceType is VarianceType.Learned or VarianceType.LearnedRange)
            throw new NotSupportedException("variance_type learned/learned_range (DeepFloyd IF) is not supported by this DPM-Solver; use null.");
    }

    private protected override SamplingRun CreateRun(int steps)
    {
        var cfg = Config;
        int T = cfg.NumTrainTimesteps;
        var ac = KSchedule.AlphasCumprod(Schedule);
        // λ_t = log √ᾱ − log √(1−ᾱ) (float32), clipped count = searchsorted(flip λ, lambda_min_clipped)
        int clipped = 0;
        for (int i = T - 1; i >= 0; i--)
        {
            float lam = MathF.Log(MathF.Sqrt(ac[i])) - MathF.Log(MathF.Sqrt(1 - ac[i]));
            if (lam < cfg.LambdaMinClipped) clipped++; else break;
        }
        int last = T - clipped;
        var spacing = Spacing(TimestepSpacing.Linspace);
        var tInt = SigmaSchedules.MultistepTimesteps(spacing, T, last, steps, cfg.StepsOffset);
        var train = KSchedule.TrainSigmas(Schedule);
        var logS = SigmaSchedules.LogSigmasF32(train);
        double[] t, sig;
        if (cfg.UseKarrasSigmas)
        {
            sig = SigmaSchedules.Karras(steps, train[0], train[^1]);
            t = sig.Select(s => SigmaSchedules.RoundEven(SigmaSchedules.SigmaToT(s, logS))).ToArray();
        }
        else if (cfg.UseLuLambdas)
        {
            // diffusers _convert_to_lu over flip(log σ) with rho = 1: linear in log σ from log σ_max to log σ_min
            double lmin = logS[0], lmax = logS[^1];
            var ramp = SigmaSchedules.Linspace(0, 1, steps);
            var lambdas = ramp.Select(r => lmax + r * (lmin - lmax)).ToArray();
            sig = lambdas.Select(Math.Exp).ToArray();
            t = sig.Select(s => SigmaSchedules.RoundEven(SigmaSchedules.SigmaToT(s, logS))).ToArray();
        }
        else
        {
            t = tInt.Select(v => (double)v).ToArray();
            sig = t.Select(x => SigmaSchedules.Interp(x, train)).ToArray();
        }
        double last_sigma = (cfg.FinalSigmasType ?? FinalSigmasType.Zero) == FinalSigmasType.Zero
            ? 0.0 : MathF.Pow((1 - ac[0]) / ac[0], 0.5f);
        var sigmas = sig.Select(SigmaSchedules.F32).Append(SigmaSchedules.F32(last_sigma)).ToArray();
        return new Run(this, steps, t.Select(v => (double)(long)v).ToArray(), sigmas);
    }

    sealed class Run(DpmSolverMultistepSampler s, int steps, double[] timesteps, double[] sigmas)
        : SamplingRun(s, steps, timesteps, true, sigmas, 1.0, AddNoiseMode.AlphaSigma)
    {
        readonly DpmSolverMultistepSampler _s = s;
        readonly List<Tensor> _outputs = [];
        int _lowerOrderNums;

        private protected override int IndexForTimestep(double t) => MultistepIndexForTimestep(t);

        static (float Alpha, float Sigma, float Lambda) AlphaSigma(double sigma) => AlphaSigmaF32(sigma);

        Tensor Convert(Tensor modelOutput, Tensor sample, int i)
        {
            var (a, st, _) = AlphaSigma(SigmaValues![i]);
            bool pp = _s._algorithm is DpmAlgorithmType.DpmSolverPlusPlus or DpmAlgorithmType.SdeDpmSolverPlusPlus;
            return ConvertModelOutput(modelOutput, sample, a, st, Sampler.Config.PredictionType, pp);
        }

        private protected override StepResult StepCore(Tensor modelOutput, int i, Tensor sample, INoiseSource? noise)
        {
            using var scope = torch.NewDisposeScope();
            var cfg = Sampler.Config;
            int n = TimestepValues.Length;
            bool lowerFinal = i == n - 1 && (cfg.EulerAtFinal || (cfg.LowerOrderFinal && n < 15) || (cfg.FinalSigmasType ?? FinalSigmasType.Zero) == FinalSigmasType.Zero);
            bool lowerSecond = i == n - 2 && cfg.LowerOrderFinal && n < 15;
            var m = Convert(modelOutput, sample, i);
            _outputs.Add(Keep(m));
            while (_outputs.Count > cfg.SolverOrder) { Release(_outputs[0]); _outputs.RemoveAt(0); }
            bool sde = _s._algorithm is DpmAlgorithmType.SdeDpmSolver or DpmAlgorithmType.SdeDpmSolverPlusPlus;
            Tensor? z = sde ? Draw(noise, modelOutput, "SDE-DPM-Solver") : null;

            Tensor prev;
            if (cfg.SolverOrder == 1 || _lowerOrderNums < 1 || lowerFinal)
                prev = FirstOrder(m, i, sample, z);
            else if (cfg.SolverOrder == 2 || _lowerOrderNums < 2 || lowerSecond)
                prev = SecondOrder(i, sample, z);
            else
                prev = ThirdOrder(i, sample);
            if (_lowerOrderNums < cfg.SolverOrder) _lowerOrderNums++;
            return new StepResult(prev.MoveToOuterDisposeScope(), null);
        }

        Tensor FirstOrder(Tensor m0, int i, Tensor x, Tensor? z)
        {
            var (at, st, lt) = AlphaSigma(SigmaValues![i + 1]);
            var (as_, ss, ls) = AlphaSigma(SigmaValues[i]);
            float h = lt - ls;
            return _s._algorithm switch
            {
                DpmAlgorithmType.DpmSolverPlusPlus => Lin(st / ss, x, -(at * (MathF.Exp(-h) - 1f)), m0),
                DpmAlgorithmType.DpmSolver => Lin(at / as_, x, -(st * (MathF.Exp(h) - 1f)), m0),
                DpmAlgorithmType.SdeDpmSolverPlusPlus => Lin(st / ss * MathF.Exp(-h), x, at * (1 - MathF.Exp(-2f * h)), m0, st * MathF.Sqrt(1f - MathF.Exp(-2 * h)), z!),
                _ => Lin(at / as_, x, -(2f * (st * (MathF.Exp(h) - 1f))), m0, st * MathF.Sqrt(MathF.Exp(2 * h) - 1f), z!),
            };
        }

        Tensor SecondOrder(int i, Tensor x, Tensor? z)
        {
            var (at, st, lt) = AlphaSigma(SigmaValues![i + 1]);
            var (as0, ss0, ls0) = AlphaSigma(SigmaValues[i]);
            var (_, _, ls1) = AlphaSigma(SigmaValues[i - 1]);
            var m0 = _outputs[^1];
            var m1 = _outputs[^2];
            float h = lt - ls0, h0 = ls0 - ls1;
            float r0 = h0 / h;
            var d0 = m0;
            using var dm = m0 - m1;
            using var d1 = dm.Times(1.0f / r0);
            bool mid = _s._solverType == DpmSolverType.Midpoint;
            switch (_s._algorithm)
            {
                case DpmAlgorithmType.DpmSolverPlusPlus:
                    return mid
                        ? Lin(st / ss0, x, -(at * (MathF.Exp(-h) - 1f)), d0, -(0.5f * (at * (MathF.Exp(-h) - 1f))), d1)
                        : Lin(st / ss0, x, -(at * (MathF.Exp(-h) - 1f)), d0, at * ((MathF.Exp(-h) - 1f) / h + 1f), d1);
                case DpmAlgorithmType.DpmSolver:
                    return mid
                        ? Lin(at / as0, x, -(st * (MathF.Exp(h) - 1f)), d0, -(0.5f * (st * (MathF.Exp(h) - 1f))), d1)
                        : Lin(at / as0, x, -(st * (MathF.Exp(h) - 1f)), d0, -(st * ((MathF.Exp(h) - 1f) / h - 1f)), d1);
                case DpmAlgorithmType.SdeDpmSolverPlusPlus:
                    return mid
                        ? Lin(st / ss0 * MathF.Exp(-h), x, at * (1 - MathF.Exp(-2f * h)), d0, 0.5f * (at * (1 - MathF.Exp(-2f * h))), d1, st * MathF.Sqrt(1f - MathF.Exp(-2f * h)), z!)
                        : Lin(st / ss0 * MathF.Exp(-h), x, at * (1 - MathF.Exp(-2f * h)), d0, at * ((1f - MathF.Exp(-2f * h)) / (-2f * h) + 1f), d1, st * MathF.Sqrt(1f - MathF.Exp(-2f * h)), z!);
                default:
                    return mid
                        ? Lin(at / as0, x, -(2f * (st * (MathF.Exp(h) - 1f))), d0, -(st * (MathF.Exp(h) - 1f)), d1, st * MathF.Sqrt(MathF.Exp(2 * h) - 1f), z!)
                        : Lin(at / as0, x, -(2f * (st * (MathF.Exp(h) - 1f))), d0, -(2f * (st * ((MathF.Exp(h) - 1f) / h - 1f))), d1, st * MathF.Sqrt(MathF.Exp(2 * h) - 1f), z!);
            }
        }

        Tensor ThirdOrder(int i, Tensor x)
        {
            var (at, st, lt) = AlphaSigma(SigmaValues![i + 1]);
            var (as0, ss0, ls0) = AlphaSigma(SigmaValues[i]);
            var (_, _, ls1) = AlphaSigma(SigmaValues[i - 1]);
            var (_, _, ls2) = AlphaSigma(SigmaValues[i - 2]);
            var m0 = _outputs[^1]; var m1 = _outputs[^2]; var m2 = _outputs[^3];
            float h = lt - ls0, h0 = ls0 - ls1, h1 = ls1 - ls2;
            float r0 = h0 / h, r1 = h1 / h;
            var d0 = m0;
            using var m01 = m0 - m1;
            using var m12 = m1 - m2;
            using var d10 = m01.Times(1.0f / r0);
            using var d11 = m12.Times(1.0f / r1);
            using var dd = d10 - d11;
            using var ddr = dd.Times(r0 / (r0 + r1));
            using var d1 = d10.Plus(ddr);
            using var d2 = dd.Times(1.0f / (r0 + r1));
            return _s._algorithm switch
            {
                DpmAlgorithmType.DpmSolverPlusPlus => Lin(st / ss0, x, -(at * (MathF.Exp(-h) - 1f)), d0, at * ((MathF.Exp(-h) - 1f) / h + 1f), d1, -(at * ((MathF.Exp(-h) - 1f + h) / (h * h) - 0.5f)), d2),
                DpmAlgorithmType.DpmSolver => Lin(at / as0, x, -(st * (MathF.Exp(h) - 1f)), d0, -(st * ((MathF.Exp(h) - 1f) / h - 1f)), d1, -(st * ((MathF.Exp(h) - 1f - h) / (h * h) - 0.5f)), d2),
                _ => throw new NotSupportedException("third-order SDE-DPM-Solver is not defined (diffusers has none either); use solver_order 2."),
            };
        }
    }
}
