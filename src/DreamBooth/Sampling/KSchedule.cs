namespace DreamBooth.Sampling;

/// <summary>
/// The timestep/sigma construction shared by the k-diffusion style samplers (Euler, Euler a, Heun, LMS, DPM++ SDE):
/// spaced timesteps → σ by linear interpolation of the training σ table → optional Karras sigmas (timesteps then
/// recovered with <see cref="SigmaSchedules.SigmaToT"/>).
/// </summary>
internal static class KSchedule
{
    /// <param name="float32Linspace">cast linspace timesteps to float32 before interpolating (Euler, Euler a, Heun, DPM SDE).</param>
    /// <param name="honourConfigSigmaRange">use config sigma_min/sigma_max for Karras (Euler only in v0.27.2).</param>
    public static (double[] Timesteps, double[] Sigmas) Build(SchedulerConfig cfg, IReadOnlyList<double> trainSigmas, int n,
        TimestepSpacing spacing, bool float32Linspace, bool allowKarras, bool honourConfigSigmaRange)
    {
        var t = SigmaSchedules.KarrasStyleTimesteps(spacing, cfg.NumTrainTimesteps, n, cfg.StepsOffset, float32Linspace);
        var sig = t.Select(x => SigmaSchedules.Interp(x, trainSigmas)).ToArray();
        if (cfg.UseKarrasSigmas)
        {
            if (!allowKarras)
                throw new NotSupportedException("use_karras_sigmas is not supported by this sampler (diffusers v0.27.2 ignores it for Euler a); set it to false.");
            double sMin = (honourConfigSigmaRange ? cfg.SigmaMin : null) ?? sig[^1];
            double sMax = (honourConfigSigmaRange ? cfg.SigmaMax : null) ?? sig[0];
            sig = SigmaSchedules.Karras(n, sMin, sMax);
            var logS = SigmaSchedules.LogSigmasF32(trainSigmas);
            t = sig.Select(s => SigmaSchedules.SigmaToT(s, logS)).ToArray();
        }
        return (t, sig);
    }

    /// <summary>σ table as float32 with a trailing 0 (what diffusers stores in <c>self.sigmas</c>).</summary>
    public static double[] WithZero(IEnumerable<double> sigmas) => sigmas.Select(SigmaSchedules.F32).Append(0.0).ToArray();

    /// <summary>The ᾱ that replaces ᾱ_T = 0 of a zero-terminal-SNR schedule (diffusers' value: fp16's smallest subnormal).</summary>
    const float TerminalAlphaCumprod = 5.9604645e-8f; // 2⁻²⁴

    /// <summary>
    /// ᾱ table for samplers that divide by ᾱ_t or √(ᾱ_t) (DPM-Solver, UniPC, PNDM): with a zero-terminal-SNR schedule
    /// (<c>rescale_betas_zero_snr</c>) ᾱ_T = 0 is replaced by 2⁻²⁴ — what diffusers does in Euler and DPM-Solver —, so
    /// σ_T and λ_T stay finite. DDIM and DDPM use ᾱ_T = 0 exactly (their updates are defined there).
    /// </summary>
    public static IReadOnlyList<float> AlphasCumprod(NoiseSchedule schedule)
    {
        var ac = schedule.AlphasCumprodValues;
        if (!schedule.Config.RescaleBetasZeroSnr || ac[^1] > 0) return ac;
        var fixedAc = ac.ToArray();
        fixedAc[^1] = TerminalAlphaCumprod;
        return fixedAc;
    }

    /// <summary>
    /// Training σ table, with the zero-terminal-SNR fix (ᾱ_T set to 2⁻²⁴ so σ_T is finite) used by every sampler that
    /// works in σ (Euler, Euler a, Heun, LMS, DPM-Solver, DPM SDE, UniPC).
    /// </summary>
    public static IReadOnlyList<double> TrainSigmas(NoiseSchedule schedule)
    {
        if (!schedule.Config.RescaleBetasZeroSnr) return schedule.TrainSigmas;
        var s = schedule.TrainSigmas.ToArray();
        const float a = TerminalAlphaCumprod;
        s[^1] = MathF.Pow((1 - a) / a, 0.5f);
        return s;
    }

    /// <summary>Gauss–Legendre 5-point integral (exact for the degree ≤ 3 Lagrange polynomials of LMS).</summary>
    public static double Integrate(Func<double, double> f, double a, double b)
    {
        ReadOnlySpan<double> x = [0.0, -0.5384693101056831, 0.5384693101056831, -0.9061798459386640, 0.9061798459386640];
        ReadOnlySpan<double> w = [0.5688888888888889, 0.4786286704993665, 0.4786286704993665, 0.2369268850561891, 0.2369268850561891];
        double half = (b - a) / 2, mid = (a + b) / 2, sum = 0;
        for (int i = 0; i < x.Length; i++) sum += w[i] * f(mid + half * x[i]);
        return sum * half;
    }
}
