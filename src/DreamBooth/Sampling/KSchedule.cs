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

    /// <summary>
    /// Training σ table, with the zero-terminal-SNR fix of Euler / Euler a (ᾱ_T set to 2⁻²⁴ so σ_T is finite).
    /// </summary>
    public static IReadOnlyList<double> TrainSigmas(NoiseSchedule schedule, bool zeroSnrFix)
    {
        if (!(zeroSnrFix && schedule.Config.RescaleBetasZeroSnr)) return schedule.TrainSigmas;
        var s = schedule.TrainSigmas.ToArray();
        float a = MathF.Pow(2, -24);
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
