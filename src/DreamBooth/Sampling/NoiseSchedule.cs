using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Sampling;

/// <summary>
/// The forward (noising) process of a DDPM (Ho et al. 2020): betas → alphas = 1 − β → ᾱ = cumprod(alphas)
/// → σ = √((1 − ᾱ)/ᾱ). Tables are computed in float32 with the same torch operations diffusers uses, so they
/// match <c>scheduler.betas</c> / <c>scheduler.alphas_cumprod</c> bit for bit. Used by the samplers and by training
/// (<see cref="AddNoise"/>, <see cref="GetVelocity"/>, <see cref="Snr"/> for min-SNR-γ weighting).
/// Immutable and safe to share; owns two small CPU tensors.
/// </summary>
public sealed class NoiseSchedule : IDisposable
{
    readonly Tensor _betas;
    readonly Tensor _alphasCumprod;

    /// <summary>Builds the schedule of <paramref name="config"/> (betas, zero-terminal-SNR rescale when asked).</summary>
    public NoiseSchedule(SchedulerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        Config = config;
        int n = config.NumTrainTimesteps;
        using var scope = torch.NewDisposeScope();
        Tensor betas;
        if (config.TrainedBetas is { } tb)
            betas = torch.tensor(tb, dtype: ScalarType.Float32);
        else
            betas = config.BetaSchedule switch
            {
                BetaSchedule.Linear => torch.linspace(config.BetaStart, config.BetaEnd, n, dtype: ScalarType.Float32),
                BetaSchedule.ScaledLinear => torch.linspace(Math.Sqrt(config.BetaStart), Math.Sqrt(config.BetaEnd), n, dtype: ScalarType.Float32).pow(2),
                BetaSchedule.SquaredCosCapV2 => torch.tensor(CosineBetas(n), dtype: ScalarType.Float32),
                _ => throw new ArgumentOutOfRangeException(nameof(config), config.BetaSchedule, "unknown beta_schedule"),
            };
        if (config.RescaleBetasZeroSnr)
            betas = RescaleZeroTerminalSnr(betas);
        var alphas = 1.0f - betas;
        var ac = torch.cumprod(alphas, 0);
        _betas = betas.contiguous().MoveToOuterDisposeScope();
        _alphasCumprod = ac.contiguous().MoveToOuterDisposeScope();
        AlphasCumprodValues = _alphasCumprod.data<float>().ToArray();
        BetaValues = _betas.data<float>().ToArray();
        // σ table as diffusers builds it: ((1 - ᾱ) / ᾱ) ** 0.5 in float32 torch, then used by numpy.
        using var sig = ((1.0f - _alphasCumprod) / _alphasCumprod).pow(0.5);
        TrainSigmas = sig.data<float>().ToArray().Select(v => (double)v).ToArray();
    }

    /// <summary>The configuration this schedule was built from.</summary>
    public SchedulerConfig Config { get; }

    /// <summary>Number of training timesteps T.</summary>
    public int NumTrainTimesteps => Config.NumTrainTimesteps;

    /// <summary>β_t, float32 [T] (a view: do not dispose, do not modify).</summary>
    public Tensor Betas => _betas;

    /// <summary>ᾱ_t, float32 [T] (a view: do not dispose, do not modify).</summary>
    public Tensor AlphasCumprod => _alphasCumprod;

    /// <summary>ᾱ_t as numbers (float32 values).</summary>
    public IReadOnlyList<float> AlphasCumprodValues { get; }

    /// <summary>β_t as numbers (float32 values).</summary>
    public IReadOnlyList<float> BetaValues { get; }

    /// <summary>σ_t = √((1 − ᾱ_t)/ᾱ_t) per training timestep, ascending in t (float32 values held as double).</summary>
    public IReadOnlyList<double> TrainSigmas { get; }

    /// <summary>
    /// q(x_t | x_0): √ᾱ_t·x₀ + √(1 − ᾱ_t)·ε, with one integer timestep per batch element (diffusers DDPM <c>add_noise</c>).
    /// </summary>
    public Tensor AddNoise(Tensor original, Tensor noise, Tensor timesteps)
    {
        using var scope = torch.NewDisposeScope();
        var (sa, s1m) = Coefficients(timesteps, original);
        return (sa * original).Plus(s1m * noise).MoveToOuterDisposeScope();
    }

    /// <summary>The v-prediction target √ᾱ_t·ε − √(1 − ᾱ_t)·x₀ (diffusers <c>get_velocity</c>).</summary>
    public Tensor GetVelocity(Tensor sample, Tensor noise, Tensor timesteps)
    {
        using var scope = torch.NewDisposeScope();
        var (sa, s1m) = Coefficients(timesteps, sample);
        return (sa * noise - s1m * sample).MoveToOuterDisposeScope();
    }

    /// <summary>Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) per timestep (float32 [B]), for min-SNR-γ loss weights (Hang et al. 2023).</summary>
    public Tensor Snr(Tensor timesteps)
    {
        using var scope = torch.NewDisposeScope();
        var ac = _alphasCumprod.to(timesteps.device).index_select(0, CheckedIndices(timesteps));
        var sqrtA = ac.Power(0.5);
        var sqrt1m = HeldScalars.From(1.0f, ac).Power(0.5);
        // Same arithmetic as diffusers' training_utils.compute_snr: (alpha / sigma) ** 2.
        return (sqrtA / sqrt1m).Power(2).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Min-SNR-γ loss weights (Hang et al. 2023, as diffusers' train scripts): min(SNR, γ)/SNR for ε targets,
    /// min(SNR, γ)/(SNR + 1) for v targets, min(SNR, γ) for x₀ targets. float32 [B].
    /// </summary>
    public Tensor MinSnrWeights(Tensor timesteps, double gamma, PredictionType prediction)
    {
        using var scope = torch.NewDisposeScope();
        return MinSnrWeightsFromSnr(Snr(timesteps), gamma, prediction).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Min-SNR-γ weights from SNR values (any shape). Where SNR is 0 (zero-terminal-SNR schedules) the ε weight would be
    /// 0/0; it is 1 there, its limit as SNR → 0.
    /// </summary>
    public static Tensor MinSnrWeightsFromSnr(Tensor snr, double gamma, PredictionType prediction)
    {
        ArgumentNullException.ThrowIfNull(snr);
        if (!(gamma > 0) || double.IsInfinity(gamma))
            throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "snr_gamma must be a finite number > 0 (5.0 is the paper's value).");
        using var scope = torch.NewDisposeScope();
        var s = snr.to(ScalarType.Float32);
        using var g = gamma.ToScalar();
        var clipped = torch.minimum(s, torch.full_like(s, g));
        var w = prediction switch
        {
            PredictionType.Epsilon => torch.where(s.eq(torch.zeros_like(s)), torch.ones_like(s), clipped / s),
            PredictionType.VPrediction => clipped / s.Shift(1),
            _ => clipped,
        };
        return w.MoveToOuterDisposeScope();
    }

    /// <summary>SNR of one training timestep.</summary>
    public double Snr(int timestep)
    {
        CheckTimestep(timestep);
        double a = AlphasCumprodValues[timestep];
        return a / (1 - a);
    }

    (Tensor sqrtAlpha, Tensor sqrtOneMinus) Coefficients(Tensor timesteps, Tensor like)
    {
        var ac = _alphasCumprod.to(like.dtype, like.device);
        var idx = CheckedIndices(timesteps).to(like.device);
        var a = ac.index_select(0, idx);
        var sa = a.Power(0.5).flatten();
        var s1m = HeldScalars.From(1, a).Power(0.5).flatten();
        var shape = new long[like.dim()];
        Array.Fill(shape, 1L);
        shape[0] = -1;
        return (sa.reshape(shape), s1m.reshape(shape));
    }

    Tensor CheckedIndices(Tensor timesteps)
    {
        if (torch.is_floating_point(timesteps) || timesteps.dtype == ScalarType.Bool)
            throw new ArgumentException($"timesteps must be an integer tensor of training timesteps in [0, {NumTrainTimesteps}); got {timesteps.dtype}.", nameof(timesteps));
        var t = timesteps.to(ScalarType.Int64).flatten();
        if (t.numel() > 0)
        {
            long min = t.min().item<long>(), max = t.max().item<long>();
            if (min < 0 || max >= NumTrainTimesteps)
                throw new ArgumentOutOfRangeException(nameof(timesteps), $"timesteps must lie in [0, {NumTrainTimesteps}); got range [{min}, {max}].");
        }
        return t.cpu();
    }

    void CheckTimestep(int t)
    {
        if (t < 0 || t >= NumTrainTimesteps)
            throw new ArgumentOutOfRangeException(nameof(t), $"timestep {t} is outside [0, {NumTrainTimesteps}).");
    }

    /// <summary>Glide cosine betas (diffusers <c>betas_for_alpha_bar</c>, cosine), computed in double then cast.</summary>
    static double[] CosineBetas(int n, double maxBeta = 0.999)
    {
        static double AlphaBar(double t) { var c = Math.Cos((t + 0.008) / 1.008 * Math.PI / 2); return c * c; }
        var betas = new double[n];
        for (int i = 0; i < n; i++)
        {
            double t1 = (double)i / n, t2 = (double)(i + 1) / n;
            betas[i] = Math.Min(1 - AlphaBar(t2) / AlphaBar(t1), maxBeta);
        }
        return betas;
    }

    /// <summary>Zero terminal SNR rescale (Lin et al. 2023, algorithm 1), as diffusers <c>rescale_zero_terminal_snr</c>.</summary>
    static Tensor RescaleZeroTerminalSnr(Tensor betas)
    {
        var alphas = 1.0f - betas;
        var ac = torch.cumprod(alphas, 0);
        var sqrtAc = ac.sqrt();
        var a0 = sqrtAc[0].clone();
        var aT = sqrtAc[-1].clone();
        sqrtAc = sqrtAc - aT;
        sqrtAc = sqrtAc * (a0 / (a0 - aT));
        var abar = sqrtAc.pow(2);
        var al = abar[1..] / abar[..^1];
        al = torch.cat([abar[..1], al]);
        return 1.0f - al;
    }

    public void Dispose()
    {
        _betas.Dispose();
        _alphasCumprod.Dispose();
    }
}
