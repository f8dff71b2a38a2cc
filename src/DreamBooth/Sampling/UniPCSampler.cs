using TorchSharp;
using static DreamBooth.HeldScalars;
using static TorchSharp.torch;

namespace DreamBooth.Sampling;

/// <summary>
/// UniPC (Zhao et al. 2023, arXiv 2302.04867) as diffusers <c>UniPCMultistepScheduler</c>: a unified predictor
/// (UniP) and corrector (UniC) of order up to <c>solver_order</c>, B(h) = h (bh1) or eʰ − 1 (bh2), data prediction
/// by default. The corrector reuses the model output of the next step, so it costs no extra evaluation.
/// </summary>
public sealed class UniPCSampler : SamplerBase
{
    readonly bool _bh1;

    internal UniPCSampler(SchedulerConfig config, SamplerOptions options) : base(Sampler.UniPC, config, options)
    {
        _bh1 = config.SolverType == DpmSolverType.Bh1;
    }

    private protected override SamplingRun CreateRun(int steps)
    {
        var cfg = Config;
        int T = cfg.NumTrainTimesteps;
        var ac = KSchedule.AlphasCumprod(Schedule);
        var spacing = Spacing(TimestepSpacing.Linspace);
        var tInt = SigmaSchedules.MultistepTimesteps(spacing, T, T, steps, cfg.StepsOffset);
        var train = KSchedule.TrainSigmas(Schedule);
        double[] t, sig;
        float sigmaAtZero = MathF.Pow((1 - ac[0]) / ac[0], 0.5f);
        double finalSigma;
        if (cfg.UseKarrasSigmas)
        {
            var logS = SigmaSchedules.LogSigmasF32(train);
            sig = SigmaSchedules.Karras(steps, train[0], train[^1]);
            t = sig.Select(s => SigmaSchedules.RoundEven(SigmaSchedules.SigmaToT(s, logS))).ToArray();
            // v0.27.2 (no final_sigmas_type field) repeats the last Karras sigma, as later versions do for sigma_min
            finalSigma = cfg.FinalSigmasType == FinalSigmasType.Zero ? 0.0 : sig[^1];
        }
        else
        {
            t = tInt.Select(v => (double)v).ToArray();
            sig = t.Select(x => SigmaSchedules.Interp(x, train)).ToArray();
            finalSigma = cfg.FinalSigmasType == FinalSigmasType.Zero ? 0.0 : sigmaAtZero;
        }
        var sigmas = sig.Select(SigmaSchedules.F32).Append(SigmaSchedules.F32(finalSigma)).ToArray();
        return new Run(this, steps, t.Select(v => (double)(long)v).ToArray(), sigmas);
    }

    sealed class Run(UniPCSampler s, int steps, double[] timesteps, double[] sigmas)
        : SamplingRun(s, steps, timesteps, true, sigmas, 1.0, AddNoiseMode.AlphaSigma)
    {
        readonly UniPCSampler _s = s;
        readonly List<Tensor> _outputs = [];
        Tensor? _lastSample;
        int _lowerOrderNums;
        int _thisOrder;

        private protected override int IndexForTimestep(double t) => MultistepIndexForTimestep(t);

        static (double Alpha, double Sigma, double Lambda) AlphaSigma(double sigma)
        {
            var (a, st, l) = AlphaSigmaF32(sigma);
            return (a, st, l);
        }

        bool PredictX0 => Sampler.Config.PredictX0;

        Tensor Convert(Tensor modelOutput, Tensor sample, int i)
        {
            var (a, st, _) = AlphaSigma(SigmaValues![i]);
            return ConvertModelOutput(modelOutput, sample, (float)a, (float)st, Sampler.Config.PredictionType, PredictX0);
        }

        private protected override StepResult StepCore(Tensor modelOutput, int i, Tensor sample, INoiseSource? noise)
        {
            using var scope = torch.NewDisposeScope();
            var cfg = Sampler.Config;
            var disabled = cfg.DisableCorrector ?? [];
            bool useCorrector = i > 0 && !disabled.Contains(i - 1) && _lastSample is not null;
            var converted = Convert(modelOutput, sample, i);
            if (useCorrector)
                sample = Corrector(converted, _lastSample!, i, _thisOrder);

            _outputs.Add(Keep(converted));
            while (_outputs.Count > cfg.SolverOrder) { Release(_outputs[0]); _outputs.RemoveAt(0); }

            int order = cfg.LowerOrderFinal ? Math.Min(cfg.SolverOrder, TimestepValues.Length - i) : cfg.SolverOrder;
            _thisOrder = Math.Min(order, _lowerOrderNums + 1);
            Release(_lastSample);
            _lastSample = Keep(sample);
            var prev = Predictor(sample, i, _thisOrder);
            if (_lowerOrderNums < cfg.SolverOrder) _lowerOrderNums++;
            return new StepResult(prev.MoveToOuterDisposeScope(), null);
        }

        /// <summary>Coefficient vectors of UniPC: hh, φ₁(hh)·hh, B(h) and b_i = h·φ_{i+1}·i!/B(h).</summary>
        (double hh, double hPhi1, double bh, double[] b) Coefficients(double h, int order)
        {
            double hh = PredictX0 ? -h : h;
            double hPhi1 = Math.Exp(hh) - 1; // expm1
            if (Math.Abs(hh) < 1e-5) hPhi1 = hh + hh * hh / 2 + hh * hh * hh / 6;
            double hPhiK = hPhi1 / hh - 1;
            double factorial = 1;
            double bh = _s._bh1 ? hh : hPhi1;
            var b = new double[order];
            for (int k = 1; k <= order; k++)
            {
                b[k - 1] = hPhiK * factorial / bh;
                factorial *= k + 1;
                hPhiK = hPhiK / hh - 1 / factorial;
            }
            return (hh, hPhi1, bh, b);
        }

        static double[] Solve(double[,] a, double[] rhs)
        {
            int n = rhs.Length;
            var m = (double[,])a.Clone();
            var x = (double[])rhs.Clone();
            for (int c = 0; c < n; c++)
            {
                int p = c;
                for (int r = c + 1; r < n; r++) if (Math.Abs(m[r, c]) > Math.Abs(m[p, c])) p = r;
                if (p != c)
                {
                    for (int k = 0; k < n; k++) (m[c, k], m[p, k]) = (m[p, k], m[c, k]);
                    (x[c], x[p]) = (x[p], x[c]);
                }
                for (int r = c + 1; r < n; r++)
                {
                    double f = m[r, c] / m[c, c];
                    for (int k = c; k < n; k++) m[r, k] -= f * m[c, k];
                    x[r] -= f * x[c];
                }
            }
            for (int r = n - 1; r >= 0; r--)
            {
                double sum = x[r];
                for (int k = r + 1; k < n; k++) sum -= m[r, k] * x[k];
                x[r] = sum / m[r, r];
            }
            return x;
        }

        static double[,] RMatrix(double[] rks, int size)
        {
            var r = new double[size, size];
            for (int row = 0; row < size; row++)
                for (int col = 0; col < size; col++)
                    r[row, col] = Math.Pow(rks[col], row);
            return r;
        }

        /// <summary>UniP-bh update (predictor) from step i to i + 1.</summary>
        Tensor Predictor(Tensor x, int i, int order)
        {
            var (at, st, lt) = AlphaSigma(SigmaValues![i + 1]);
            var (as0, ss0, ls0) = AlphaSigma(SigmaValues[i]);
            double h = lt - ls0;
            var m0 = _outputs[^1];
            var rks = new List<double>();
            var d1s = new List<Tensor>();
            for (int k = 1; k < order; k++)
            {
                int si = i - k;
                var mi = _outputs[^(k + 1)];
                var (_, _, lsi) = AlphaSigma(SigmaValues[si]);
                double rk = (lsi - ls0) / h;
                rks.Add(rk);
                d1s.Add(Derivative(mi, m0, (float)rk)); // (m_i − m_0) / r_k
            }
            rks.Add(1.0);
            var (_, hPhi1, bh, b) = Coefficients(h, order);
            Tensor? predRes = null;
            if (d1s.Count > 0)
            {
                double[] rhos = order == 2 ? [0.5] : Solve(RMatrix(rks.ToArray(), order - 1), b[..(order - 1)]);
                predRes = WeightedSum(d1s, rhos, d1s.Count);
            }
            var (cx, cm, cr) = PredictX0 ? ((float)(st / ss0), (float)(at * hPhi1), (float)(at * bh)) : ((float)(at / as0), (float)(st * hPhi1), (float)(st * bh));
            return predRes is null ? Lin(cx, x, -cm, m0) : Lin(cx, x, -cm, m0, -cr, predRes);
        }

        /// <summary>Σ (float)w_k·t_k over the first <paramref name="count"/> terms, accumulated left to right; null when there are none.</summary>
        static Tensor? WeightedSum(IReadOnlyList<Tensor> terms, double[] weights, int count)
        {
            Tensor? sum = null;
            for (int k = 0; k < count; k++)
            {
                var term = terms[k].Times((float)weights[k]);
                sum = sum is null ? term : sum.Plus(term);
            }
            return sum;
        }

        /// <summary>UniC-bh update (corrector) of the sample at step i using the fresh model output there.</summary>
        Tensor Corrector(Tensor modelT, Tensor lastSample, int i, int order)
        {
            var (at, st, lt) = AlphaSigma(SigmaValues![i]);
            var (as0, ss0, ls0) = AlphaSigma(SigmaValues[i - 1]);
            double h = lt - ls0;
            var m0 = _outputs[^1];
            var rks = new List<double>();
            var d1s = new List<Tensor>();
            for (int k = 1; k < order; k++)
            {
                int si = i - (k + 1);
                var mi = _outputs[^(k + 1)];
                var (_, _, lsi) = AlphaSigma(SigmaValues[si]);
                double rk = (lsi - ls0) / h;
                rks.Add(rk);
                d1s.Add(Derivative(mi, m0, (float)rk)); // (m_i − m_0) / r_k
            }
            rks.Add(1.0);
            var (_, hPhi1, bh, b) = Coefficients(h, order);
            double[] rhos = order == 1 ? [0.5] : Solve(RMatrix(rks.ToArray(), order), b);
            var corrRes = WeightedSum(d1s, rhos, d1s.Count);
            var d1t = modelT - m0;
            var last = d1t.Times((float)rhos[^1]);
            var inner = corrRes is null ? last : corrRes.Plus(last);
            var (cx, cm, ci) = PredictX0 ? ((float)(st / ss0), (float)(at * hPhi1), (float)(at * bh)) : ((float)(at / as0), (float)(st * hPhi1), (float)(st * bh));
            return Lin(cx, lastSample, -cm, m0, -ci, inner);
        }
    }
}
