namespace DreamBooth.Sampling;

/// <summary>
/// Pure functions that build inference timestep and sigma arrays, written to reproduce the NumPy arithmetic of
/// diffusers v0.27.2 exactly (NumPy's <c>linspace</c>/<c>arange</c>/<c>interp</c>, round-half-to-even).
/// Nothing here holds state or tensors.
/// </summary>
public static class SigmaSchedules
{
    /// <summary>Karras et al. (2022) rho used by k-diffusion and diffusers.</summary>
    public const double KarrasRho = 7.0;

    /// <summary>
    /// Karras et al. 2022 (eq. 5) noise levels: (σ_max^(1/ρ) + i/(n−1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ, i = 0..n−1, descending.
    /// k-diffusion <c>get_sigmas_karras</c> without the appended zero.
    /// </summary>
    public static double[] Karras(int n, double sigmaMin, double sigmaMax, double rho = KarrasRho)
    {
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(n), n, "need at least one step");
        if (!(sigmaMin > 0) || !(sigmaMax >= sigmaMin))
            throw new ArgumentException($"Karras sigmas need 0 < sigma_min <= sigma_max; got {sigmaMin}, {sigmaMax}.");
        var ramp = Linspace(0, 1, n);
        double minInv = Math.Pow(sigmaMin, 1 / rho), maxInv = Math.Pow(sigmaMax, 1 / rho);
        return ramp.Select(r => Math.Pow(maxInv + r * (minInv - maxInv), rho)).ToArray();
    }

    /// <summary>NumPy <c>linspace(start, stop, num)</c> (endpoint included): i·step + start, last = stop.</summary>
    public static double[] Linspace(double start, double stop, int num)
    {
        if (num < 0) throw new ArgumentOutOfRangeException(nameof(num));
        var y = new double[num];
        if (num == 0) return y;
        if (num == 1) { y[0] = start; return y; }
        double step = (stop - start) / (num - 1);
        for (int i = 0; i < num; i++) y[i] = i * step + start;
        y[^1] = stop;
        return y;
    }

    /// <summary>NumPy <c>arange(start, stop, step)</c> for doubles: length ceil((stop − start)/step), values start + i·step.</summary>
    public static double[] Arange(double start, double stop, double step)
    {
        if (step == 0) throw new ArgumentException("step must not be zero", nameof(step));
        long len = (long)Math.Ceiling((stop - start) / step);
        if (len <= 0) return [];
        var y = new double[len];
        for (long i = 0; i < len; i++) y[i] = start + i * step;
        return y;
    }

    /// <summary>NumPy <c>interp(x, arange(len(fp)), fp)</c>: piecewise linear, clamped at both ends.</summary>
    public static double Interp(double x, IReadOnlyList<double> fp)
    {
        int n = fp.Count;
        if (double.IsNaN(x)) return double.NaN;
        if (x <= 0) return fp[0];
        if (x >= n - 1) return fp[n - 1];
        int j = (int)Math.Floor(x);
        double slope = fp[j + 1] - fp[j];
        double frac = x - j;
        // numpy: slope*(x - xp[j]) + fp[j]
        var r = slope * frac + fp[j];
        return frac == 0 ? fp[j] : r;
    }

    /// <summary>Round half to even, as <c>np.round</c>.</summary>
    public static double RoundEven(double v) => Math.Round(v, MidpointRounding.ToEven);

    /// <summary>float32 rounding of a double (NumPy <c>astype(np.float32)</c>).</summary>
    public static double F32(double v) => (float)v;

    /// <summary>
    /// diffusers <c>_sigma_to_t</c>: the fractional training timestep whose log-sigma (piecewise linear in t) equals log σ.
    /// <paramref name="logSigmas"/> is log of the ascending training sigma table (float32 values).
    /// </summary>
    public static double SigmaToT(double sigma, IReadOnlyList<double> logSigmas)
    {
        double logSigma = Math.Log(Math.Max(sigma, 1e-10));
        int n = logSigmas.Count;
        // index of the last i with logSigma >= logSigmas[i] (0 when none), clipped to n-2
        int low = 0;
        for (int i = 0; i < n; i++) if (logSigma - logSigmas[i] >= 0) low = i;
        low = Math.Min(low, n - 2);
        int high = low + 1;
        double lo = logSigmas[low], hi = logSigmas[high];
        double w = (lo - logSigma) / (lo - hi);
        w = Math.Clamp(w, 0, 1);
        return (1 - w) * low + w * high;
    }

    /// <summary>log of each training sigma in float32 (as <c>np.log</c> of a float32 array).</summary>
    public static double[] LogSigmasF32(IReadOnlyList<double> trainSigmas) =>
        trainSigmas.Select(s => (double)MathF.Log((float)s)).ToArray();

    /// <summary>
    /// DDPM / DDIM <c>set_timesteps</c>: <paramref name="n"/> integer timesteps, descending.
    /// linspace: round(linspace(0, T−1, n)); leading: i·(T // n) + steps_offset; trailing: round(arange(T, 0, −T/n)) − 1.
    /// </summary>
    public static long[] DdimTimesteps(TimestepSpacing spacing, int trainSteps, int n, int stepsOffset)
    {
        CheckSteps(trainSteps, n);
        long[] t = spacing switch
        {
            TimestepSpacing.Linspace => Linspace(0, trainSteps - 1, n).Select(v => (long)RoundEven(v)).Reverse().ToArray(),
            TimestepSpacing.Leading => Enumerable.Range(0, n).Select(i => (long)i * (trainSteps / n) + stepsOffset).Reverse().ToArray(),
            TimestepSpacing.Trailing => Arange(trainSteps, 0, -(double)trainSteps / n).Select(v => (long)RoundEven(v) - 1).ToArray(),
            _ => throw new ArgumentOutOfRangeException(nameof(spacing)),
        };
        return CheckRange(t, trainSteps);
    }

    /// <summary>
    /// PNDM <c>set_timesteps</c> base array (ascending, before the PLMS repeat):
    /// linspace: round(linspace(0, T−1, n)); leading: i·(T // n) + offset; trailing: reversed round(arange(T, 0, −T/n)) − 1.
    /// </summary>
    public static long[] PndmBaseTimesteps(TimestepSpacing spacing, int trainSteps, int n, int stepsOffset)
    {
        CheckSteps(trainSteps, n);
        long[] t = spacing switch
        {
            TimestepSpacing.Linspace => Linspace(0, trainSteps - 1, n).Select(v => (long)RoundEven(v)).ToArray(),
            TimestepSpacing.Leading => Enumerable.Range(0, n).Select(i => (long)i * (trainSteps / n) + stepsOffset).ToArray(),
            TimestepSpacing.Trailing => Arange(trainSteps, 0, -(double)trainSteps / n).Select(v => (long)RoundEven(v)).Reverse().Select(v => v - 1).ToArray(),
            _ => throw new ArgumentOutOfRangeException(nameof(spacing)),
        };
        return CheckRange(t, trainSteps);
    }

    /// <summary>
    /// Euler / Euler-ancestral / Heun / LMS / DPM-SDE <c>set_timesteps</c>: <paramref name="n"/> (possibly fractional) timesteps, descending.
    /// When <paramref name="float32"/> the linspace values are cast to float32 as those classes do.
    /// </summary>
    public static double[] KarrasStyleTimesteps(TimestepSpacing spacing, int trainSteps, int n, int stepsOffset, bool float32)
    {
        CheckSteps(trainSteps, n);
        double[] t = spacing switch
        {
            TimestepSpacing.Linspace => Linspace(0, trainSteps - 1, n).Reverse().Select(v => float32 ? F32(v) : v).ToArray(),
            TimestepSpacing.Leading => Enumerable.Range(0, n).Select(i => RoundEven((double)i * (trainSteps / n))).Reverse().Select(v => v + stepsOffset).ToArray(),
            TimestepSpacing.Trailing => Arange(trainSteps, 0, -(double)trainSteps / n).Select(v => RoundEven(v) - 1).ToArray(),
            _ => throw new ArgumentOutOfRangeException(nameof(spacing)),
        };
        if (t.Any(v => v < 0 || v > trainSteps - 1))
            throw new ArgumentException($"{n} steps with this spacing give timesteps outside [0, {trainSteps - 1}]; choose another number of steps or spacing.");
        return t;
    }

    /// <summary>
    /// DPM-Solver / UniPC <c>set_timesteps</c>: n integer timesteps built from n+1 points with the last dropped.
    /// <paramref name="lastTimestep"/> is T minus the λ-clipped count (T when lambda_min_clipped is −∞).
    /// </summary>
    public static long[] MultistepTimesteps(TimestepSpacing spacing, int trainSteps, int lastTimestep, int n, int stepsOffset)
    {
        CheckSteps(trainSteps, n);
        long[] t = spacing switch
        {
            TimestepSpacing.Linspace => Linspace(0, lastTimestep - 1, n + 1).Select(v => (long)RoundEven(v)).Reverse().Take(n).ToArray(),
            TimestepSpacing.Leading => Enumerable.Range(0, n + 1).Select(i => (long)i * (lastTimestep / (n + 1))).Reverse().Take(n).Select(v => v + stepsOffset).ToArray(),
            TimestepSpacing.Trailing => Arange(lastTimestep, 0, -(double)trainSteps / n).Select(v => (long)RoundEven(v) - 1).ToArray(),
            _ => throw new ArgumentOutOfRangeException(nameof(spacing)),
        };
        return CheckRange(t, trainSteps);
    }

    static void CheckSteps(int trainSteps, int n)
    {
        if (n < 1)
            throw new ArgumentOutOfRangeException(nameof(n), n, "the number of inference steps must be at least 1.");
        if (n > trainSteps)
            throw new ArgumentOutOfRangeException(nameof(n), n, $"the number of inference steps cannot exceed num_train_timesteps ({trainSteps}).");
    }

    static long[] CheckRange(long[] t, int trainSteps)
    {
        if (t.Any(v => v < 0 || v >= trainSteps))
            throw new ArgumentException($"these settings give timesteps outside [0, {trainSteps}) ({string.Join(", ", t)}); lower steps_offset or choose another number of steps or spacing.");
        return t;
    }
}
