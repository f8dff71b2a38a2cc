using System.Globalization;

namespace DreamBooth.Notebooks.Charts;

/// <summary>A numeric axis: its range (data units), whether it is logarithmic, and its tick positions.</summary>
public sealed class Axis
{
    Axis(double min, double max, bool log, IReadOnlyList<double> ticks)
    {
        Min = min; Max = max; IsLog = log; Ticks = ticks;
    }

    /// <summary>Lowest value shown.</summary>
    public double Min { get; }
    /// <summary>Highest value shown.</summary>
    public double Max { get; }
    /// <summary>Logarithmic (base 10) axis.</summary>
    public bool IsLog { get; }
    /// <summary>Tick values, ascending, all within [Min, Max].</summary>
    public IReadOnlyList<double> Ticks { get; }

    /// <summary>Where a value falls along the axis, 0 at <see cref="Min"/> and 1 at <see cref="Max"/>.</summary>
    public double Fraction(double value)
    {
        if (IsLog) return (Math.Log10(value) - Math.Log10(Min)) / (Math.Log10(Max) - Math.Log10(Min));
        return (value - Min) / (Max - Min);
    }

    /// <summary>
    /// A linear axis covering [min, max] extended to "nice" tick steps (1, 2, 2.5 or 5 × 10^k, Heckbert's
    /// "Nice numbers for graph labels", Graphics Gems 1990). A zero-width range is widened so it stays visible.
    /// </summary>
    /// <param name="min">Lowest data value.</param>
    /// <param name="max">Highest data value.</param>
    /// <param name="maxTicks">Most ticks wanted.</param>
    /// <param name="integer">Ticks on whole numbers only (steps, counts).</param>
    public static Axis Linear(double min, double max, int maxTicks = 6, bool integer = false)
    {
        if (!double.IsFinite(min) || !double.IsFinite(max)) (min, max) = (0, 1);
        if (min > max) (min, max) = (max, min);
        if (max - min < 1e-12 * Math.Max(1, Math.Abs(max)))
        {
            double pad = min == 0 ? 1 : Math.Abs(min) * 0.1;
            min -= pad; max += pad;
        }
        maxTicks = Math.Max(2, maxTicks);
        double step = NiceStep((max - min) / (maxTicks - 1));
        if (integer && step < 1) step = 1;
        else if (integer && step == 2.5) step = 2;
        double lo = Math.Floor(min / step) * step, hi = Math.Ceiling(max / step) * step;
        var ticks = new List<double>();
        for (int i = 0; ; i++)
        {
            double t = lo + i * step;
            if (t > hi + step * 1e-9) break;
            ticks.Add(Math.Abs(t) < step * 1e-9 ? 0 : t);
        }
        return new Axis(lo, hi, false, ticks);
    }

    /// <summary>A base-10 logarithmic axis from the decade below <paramref name="min"/> to the decade above <paramref name="max"/>
    /// (both must be positive); ticks at every decade (thinned when there are many), plus 2 and 5 when it spans less than two decades.</summary>
    public static Axis Logarithmic(double min, double max, int maxTicks = 6)
    {
        if (!(min > 0) || !double.IsFinite(min)) min = 1;
        if (!(max > 0) || !double.IsFinite(max)) max = min * 10;
        if (min > max) (min, max) = (max, min);
        int d0 = (int)Math.Floor(Math.Log10(min) + 1e-12), d1 = (int)Math.Ceiling(Math.Log10(max) - 1e-12);
        if (d1 <= d0) d1 = d0 + 1;
        int decades = d1 - d0;
        int every = Math.Max(1, (int)Math.Ceiling((decades + 1) / (double)Math.Max(2, maxTicks)));
        var ticks = new List<double>();
        for (int d = d0; d <= d1; d++)
        {
            if ((d - d0) % every == 0) ticks.Add(Math.Pow(10, d));
            if (decades <= 2 && d < d1) { ticks.Add(2 * Math.Pow(10, d)); ticks.Add(5 * Math.Pow(10, d)); }
        }
        ticks.Sort();
        return new Axis(Math.Pow(10, d0), Math.Pow(10, d1), true, ticks);
    }

    /// <summary>Compact tick label: plain for ordinary magnitudes, 1e-4 style for very small or large ones.</summary>
    public static string Label(double v)
    {
        if (v == 0) return "0";
        double a = Math.Abs(v);
        if (a >= 1e5 || a < 1e-3)
        {
            int exp = (int)Math.Floor(Math.Log10(a));
            double mant = v / Math.Pow(10, exp);
            string m = Math.Abs(mant - Math.Round(mant)) < 1e-9 ? ((int)Math.Round(mant)).ToString(CultureInfo.InvariantCulture) : mant.ToString("0.#", CultureInfo.InvariantCulture);
            return $"{m}e{exp}";
        }
        return v.ToString("0.####", CultureInfo.InvariantCulture);
    }

    static double NiceStep(double raw)
    {
        if (!(raw > 0)) return 1;
        double exp = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double f = raw / exp;
        double nice = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
        return nice * exp;
    }
}
