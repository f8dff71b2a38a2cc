namespace DreamBooth.Notebooks.Charts;

/// <summary>The charts the notebooks show: training loss and learning rate, the noise schedule, step times.</summary>
public static class Charts
{
    /// <summary>
    /// Exponential moving average with bias correction (TensorBoard's "smoothing" slider): s_t = w·s_{t−1} + (1−w)·v_t,
    /// divided by 1 − w^t so the first points are not pulled towards zero. Non-finite values are passed through as NaN and skipped.
    /// </summary>
    public static double[] Smooth(IReadOnlyList<double> values, double weight = 0.9)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (weight is < 0 or >= 1 || double.IsNaN(weight))
            throw new ArgumentOutOfRangeException(nameof(weight), weight, "smoothing weight must be in [0, 1): 0 = none, 0.9 = typical, 0.99 = heavy.");
        var result = new double[values.Count];
        double acc = 0; int n = 0;
        for (int i = 0; i < values.Count; i++)
        {
            double v = values[i];
            if (!double.IsFinite(v)) { result[i] = double.NaN; continue; }
            acc = weight * acc + (1 - weight) * v;
            n++;
            result[i] = acc / (1 - Math.Pow(weight, n));
        }
        return result;
    }

    /// <summary>
    /// Training loss per step (faint dots), its smoothed curve, and the learning rate on the right axis.
    /// </summary>
    /// <param name="steps">Step numbers (x).</param>
    /// <param name="losses">Loss at each step.</param>
    /// <param name="learningRates">Learning rate at each step (null: no LR series).</param>
    /// <param name="smoothing">EMA weight for the smoothed loss (see <see cref="Smooth"/>).</param>
    /// <param name="logY">Logarithmic loss axis.</param>
    public static SvgChart LossAndLearningRate(IReadOnlyList<int> steps, IReadOnlyList<double> losses,
        IReadOnlyList<double>? learningRates = null, double smoothing = 0.9, bool logY = false)
    {
        ArgumentNullException.ThrowIfNull(steps);
        ArgumentNullException.ThrowIfNull(losses);
        if (steps.Count != losses.Count)
            throw new ArgumentException($"{steps.Count} steps but {losses.Count} losses; give one loss per step.", nameof(losses));
        if (learningRates != null && learningRates.Count != steps.Count)
            throw new ArgumentException($"{steps.Count} steps but {learningRates.Count} learning rates; give one per step.", nameof(learningRates));
        var x = steps.Select(s => (double)s).ToArray();
        var series = new List<ChartSeries>
        {
            new("loss", x, losses) { Kind = SeriesKind.Scatter, Opacity = 0.35 },
            new($"loss (smoothed {NotebookHtml.Num(smoothing)})", x, Smooth(losses, smoothing)) { Color = SvgChart.Palette[0], StrokeWidth = 2.2 },
        };
        if (learningRates != null)
            series.Add(new ChartSeries("learning rate", x, learningRates) { Axis = YAxisSide.Right, Dashed = true, Color = SvgChart.Palette[1] });
        return new SvgChart
        {
            Title = "Training loss and learning rate",
            XLabel = "step",
            YLabel = "loss",
            Y2Label = "learning rate",
            LogY = logY,
            Series = series,
        };
    }

    /// <summary>
    /// The noise schedule from ᾱ_t (alphas_cumprod): left, how much signal √ᾱ_t and noise √(1−ᾱ_t) a training sample at
    /// timestep t holds; right (log axis), the noise level σ_t = √((1−ᾱ_t)/ᾱ_t) the k-diffusion samplers walk down and the
    /// signal-to-noise ratio SNR = ᾱ_t/(1−ᾱ_t) (Ho et al. 2020; Karras et al. 2022; Hang et al. 2023 for min-SNR).
    /// </summary>
    public static ChartRow NoiseSchedule(IReadOnlyList<float> alphasCumprod, string name = "")
    {
        ArgumentNullException.ThrowIfNull(alphasCumprod);
        if (alphasCumprod.Count == 0) throw new ArgumentException("alphas_cumprod is empty; pass the schedule's AlphasCumprodValues.", nameof(alphasCumprod));
        var t = Enumerable.Range(0, alphasCumprod.Count).Select(i => (double)i).ToArray();
        var a = alphasCumprod.Select(v => (double)v).ToArray();
        string suffix = string.IsNullOrEmpty(name) ? "" : $" ({name})";
        var left = new SvgChart
        {
            Title = "Signal and noise per timestep" + suffix,
            XLabel = "timestep t",
            YLabel = "scale",
            Width = 420,
            Series =
            [
                new("ᾱ_t (alphas_cumprod)", t, a),
                new("√ᾱ_t signal", t, a.Select(Math.Sqrt).ToArray()) { Dashed = true },
                new("√(1−ᾱ_t) noise", t, a.Select(v => Math.Sqrt(1 - v)).ToArray()) { Dashed = true },
            ],
        };
        var right = new SvgChart
        {
            Title = "Noise level σ and SNR" + suffix,
            XLabel = "timestep t",
            YLabel = "σ_t, SNR",
            LogY = true,
            Width = 420,
            Series =
            [
                new("σ_t = √((1−ᾱ)/ᾱ)", t, a.Select(v => Math.Sqrt((1 - v) / v)).ToArray()) { Color = SvgChart.Palette[3] },
                new("SNR = ᾱ/(1−ᾱ)", t, a.Select(v => v / (1 - v)).ToArray()) { Color = SvgChart.Palette[4] },
            ],
        };
        return new ChartRow(left, right);
    }

    /// <summary>Seconds per step (dots), their smoothed curve and the mean as a dashed line.</summary>
    public static SvgChart StepTimes(IReadOnlyList<double> secondsPerStep, string title = "Time per step", double smoothing = 0.8)
    {
        ArgumentNullException.ThrowIfNull(secondsPerStep);
        var x = Enumerable.Range(1, secondsPerStep.Count).Select(i => (double)i).ToArray();
        var finite = secondsPerStep.Where(double.IsFinite).ToList();
        double mean = finite.Count > 0 ? finite.Average() : double.NaN;
        return new SvgChart
        {
            Title = title,
            XLabel = "step",
            YLabel = "seconds",
            Series =
            [
                new("step time", x, secondsPerStep) { Kind = SeriesKind.Scatter, Opacity = 0.6 },
                new("smoothed", x, Smooth(secondsPerStep, smoothing)) { Color = SvgChart.Palette[0] },
                new($"mean {NotebookHtml.Num(mean, "0.###")} s", x.Length > 0 ? [x[0], x[^1]] : [], x.Length > 0 ? [mean, mean] : []) { Dashed = true, Color = "#888" },
            ],
        };
    }
}
