using System.Text;

namespace DreamBooth.Notebooks.Charts;

/// <summary>How a series is drawn.</summary>
public enum SeriesKind
{
    /// <summary>A polyline through the points (broken at missing values).</summary>
    Line,
    /// <summary>Dots only.</summary>
    Scatter,
    /// <summary>A polyline with a dot on every point.</summary>
    LineAndMarkers,
}

/// <summary>Which y axis a series is measured against.</summary>
public enum YAxisSide
{
    /// <summary>The left axis (<see cref="SvgChart.YLabel"/>, <see cref="SvgChart.LogY"/>).</summary>
    Left,
    /// <summary>The right axis (<see cref="SvgChart.Y2Label"/>, <see cref="SvgChart.LogY2"/>), e.g. the learning rate beside the loss.</summary>
    Right,
}

/// <summary>One named series of (x, y) points. NaN, infinite values (and non-positive ones on a log axis) are left out.</summary>
public sealed record ChartSeries(string Name, IReadOnlyList<double> X, IReadOnlyList<double> Y)
{
    /// <summary>Line, dots or both.</summary>
    public SeriesKind Kind { get; init; } = SeriesKind.Line;
    /// <summary>CSS colour; null picks the next palette colour.</summary>
    public string? Color { get; init; }
    /// <summary>Axis the series is measured against.</summary>
    public YAxisSide Axis { get; init; } = YAxisSide.Left;
    /// <summary>Dashed line.</summary>
    public bool Dashed { get; init; }
    /// <summary>0..1 opacity (raw, noisy series look best faint under their smoothed version).</summary>
    public double Opacity { get; init; } = 1;
    /// <summary>Line width in pixels.</summary>
    public double StrokeWidth { get; init; } = 1.8;

    /// <summary>Builds a series over x = 0, 1, 2, ….</summary>
    public static ChartSeries Indexed(string name, IReadOnlyList<double> y) =>
        new(name, Enumerable.Range(0, y.Count).Select(i => (double)i).ToArray(), y);

    /// <summary>Checks that X and Y have the same length.</summary>
    public void Validate()
    {
        ArgumentNullException.ThrowIfNull(X, $"{Name}.X");
        ArgumentNullException.ThrowIfNull(Y, $"{Name}.Y");
        if (X.Count != Y.Count)
            throw new ArgumentException($"chart series '{Name}' has {X.Count} x values but {Y.Count} y values; give one x per y.", nameof(Y));
        if (Opacity is < 0 or > 1 || double.IsNaN(Opacity))
            throw new ArgumentException($"chart series '{Name}': Opacity must be between 0 and 1 (got {Opacity}).", nameof(Opacity));
    }
}

/// <summary>
/// A dependency-free line/scatter chart rendered as inline SVG (text/html), so it shows in every notebook front end
/// (VS Code, Jupyter, the dotnet-repl output .ipynb, GitHub's viewer) without JavaScript and without Plotly.NET, whose
/// FSharp.Core 10.1 does not load in the kernels we pin. Several series, a left and an optional right y axis, each
/// linear or logarithmic, "nice" ticks (1-2-5 steps; decades on log axes), a grid, axis titles and a legend.
/// </summary>
public sealed record SvgChart
{
    /// <summary>Default series colours (Plotly's palette, so the charts look familiar).</summary>
    public static readonly string[] Palette = ["#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880"];

    /// <summary>Title above the plot.</summary>
    public string Title { get; init; } = "";
    /// <summary>X axis title.</summary>
    public string XLabel { get; init; } = "";
    /// <summary>Left y axis title.</summary>
    public string YLabel { get; init; } = "";
    /// <summary>Right y axis title (shown when a series uses <see cref="YAxisSide.Right"/>).</summary>
    public string Y2Label { get; init; } = "";
    /// <summary>Logarithmic left y axis.</summary>
    public bool LogY { get; init; }
    /// <summary>Logarithmic right y axis.</summary>
    public bool LogY2 { get; init; }
    /// <summary>Width in pixels.</summary>
    public int Width { get; init; } = 640;
    /// <summary>Height in pixels.</summary>
    public int Height { get; init; } = 320;
    /// <summary>The series, drawn in order (later ones on top).</summary>
    public IReadOnlyList<ChartSeries> Series { get; init; } = [];

    /// <summary>Checks sizes and series.</summary>
    public void Validate()
    {
        if (Width < 160 || Height < 120)
            throw new ArgumentException($"SvgChart is {Width}×{Height} px; Width must be at least 160 and Height at least 120.", nameof(Width));
        ArgumentNullException.ThrowIfNull(Series);
        foreach (var s in Series) s.Validate();
    }

    /// <summary>Returns a copy with one more series.</summary>
    public SvgChart With(ChartSeries series) => this with { Series = [.. Series, series] };

    /// <summary>The chart as an &lt;svg&gt; element.</summary>
    public string ToSvg()
    {
        Validate();
        bool hasRight = Series.Any(s => s.Axis == YAxisSide.Right);
        double left = 64, right = hasRight ? 64 : 18, bottom = 44;
        // legend layout: items flow left to right above the plot and wrap to new rows
        var legend = new List<(double X, int Row)>();
        double lx = left; int rows = Series.Count > 0 ? 1 : 0;
        for (int i = 0; i < Series.Count; i++)
        {
            double w = 34 + LegendName(i, hasRight).Length * 6.2;
            if (lx > left && lx + w > Width - 8) { lx = left; rows++; }
            legend.Add((lx, rows - 1));
            lx += w;
        }
        double legendTop = string.IsNullOrEmpty(Title) ? 8 : 28;
        double top = legendTop + rows * 16 + 6;
        double pw = Width - left - right, ph = Height - top - bottom;
        if (ph < 40) throw new ArgumentException($"SvgChart '{Title}': {Series.Count} legend entries leave no room for the plot at height {Height}; make it taller.", nameof(Height));

        var xs = Series.SelectMany(s => Points(s, logY: false).Select(p => p.X)).ToList();
        var (xMin, xMax) = Extent(xs);
        bool integerX = xs.Count > 0 && xs.All(v => Math.Abs(v - Math.Round(v)) < 1e-9);
        var xAxis = Axis.Linear(xMin, xMax, maxTicks: Math.Max(2, (int)(pw / 70)), integer: integerX);
        var leftAxis = AxisFor(YAxisSide.Left, LogY, ph);
        var rightAxis = hasRight ? AxisFor(YAxisSide.Right, LogY2, ph) : null;

        var sb = new StringBuilder();
        sb.Append($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\" ")
          .Append("font-family=\"sans-serif\" font-size=\"11\" style=\"background:#fff\">");
        if (!string.IsNullOrEmpty(Title))
            sb.Append($"<text x=\"{NotebookHtml.Num(Width / 2.0)}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{NotebookHtml.Enc(Title)}</text>");
        sb.Append($"<rect x=\"{NotebookHtml.Num(left)}\" y=\"{NotebookHtml.Num(top)}\" width=\"{NotebookHtml.Num(pw)}\" height=\"{NotebookHtml.Num(ph)}\" fill=\"#fafafa\" stroke=\"#bbb\"/>");

        // grid and ticks: x
        foreach (var t in xAxis.Ticks)
        {
            double px = left + xAxis.Fraction(t) * pw;
            sb.Append($"<line x1=\"{NotebookHtml.Num(px)}\" y1=\"{NotebookHtml.Num(top)}\" x2=\"{NotebookHtml.Num(px)}\" y2=\"{NotebookHtml.Num(top + ph)}\" stroke=\"#e4e4e4\"/>");
            sb.Append($"<text x=\"{NotebookHtml.Num(px)}\" y=\"{NotebookHtml.Num(top + ph + 14)}\" text-anchor=\"middle\">{NotebookHtml.Enc(Axis.Label(t))}</text>");
        }
        // grid and ticks: left y
        foreach (var t in leftAxis.Ticks)
        {
            double py = top + (1 - leftAxis.Fraction(t)) * ph;
            sb.Append($"<line x1=\"{NotebookHtml.Num(left)}\" y1=\"{NotebookHtml.Num(py)}\" x2=\"{NotebookHtml.Num(left + pw)}\" y2=\"{NotebookHtml.Num(py)}\" stroke=\"#e4e4e4\"/>");
            sb.Append($"<text x=\"{NotebookHtml.Num(left - 5)}\" y=\"{NotebookHtml.Num(py + 4)}\" text-anchor=\"end\">{NotebookHtml.Enc(Axis.Label(t))}</text>");
        }
        if (rightAxis != null)
            foreach (var t in rightAxis.Ticks)
            {
                double py = top + (1 - rightAxis.Fraction(t)) * ph;
                sb.Append($"<line x1=\"{NotebookHtml.Num(left + pw)}\" y1=\"{NotebookHtml.Num(py)}\" x2=\"{NotebookHtml.Num(left + pw + 4)}\" y2=\"{NotebookHtml.Num(py)}\" stroke=\"#888\"/>");
                sb.Append($"<text x=\"{NotebookHtml.Num(left + pw + 6)}\" y=\"{NotebookHtml.Num(py + 4)}\" text-anchor=\"start\">{NotebookHtml.Enc(Axis.Label(t))}</text>");
            }
        // axis titles
        if (!string.IsNullOrEmpty(XLabel))
            sb.Append($"<text x=\"{NotebookHtml.Num(left + pw / 2)}\" y=\"{NotebookHtml.Num(Height - 8)}\" text-anchor=\"middle\">{NotebookHtml.Enc(XLabel)}</text>");
        if (!string.IsNullOrEmpty(YLabel))
            sb.Append($"<text transform=\"translate(14,{NotebookHtml.Num(top + ph / 2)}) rotate(-90)\" text-anchor=\"middle\">{NotebookHtml.Enc(YLabel + (LogY ? " (log)" : ""))}</text>");
        if (rightAxis != null && !string.IsNullOrEmpty(Y2Label))
            sb.Append($"<text transform=\"translate({NotebookHtml.Num(Width - 10)},{NotebookHtml.Num(top + ph / 2)}) rotate(90)\" text-anchor=\"middle\">{NotebookHtml.Enc(Y2Label + (LogY2 ? " (log)" : ""))}</text>");

        // series, clipped to the plot area
        string clipId = "dbplot" + Interlocked.Increment(ref s_clipIds);
        sb.Append($"<clipPath id=\"{clipId}\"><rect x=\"{NotebookHtml.Num(left)}\" y=\"{NotebookHtml.Num(top)}\" width=\"{NotebookHtml.Num(pw)}\" height=\"{NotebookHtml.Num(ph)}\"/></clipPath>");
        sb.Append($"<g clip-path=\"url(#{clipId})\">");
        for (int i = 0; i < Series.Count; i++)
        {
            var s = Series[i];
            var axis = s.Axis == YAxisSide.Right && rightAxis != null ? rightAxis : leftAxis;
            bool log = s.Axis == YAxisSide.Right ? LogY2 : LogY;
            string color = ColorOf(i);
            string opacity = s.Opacity < 1 ? $" opacity=\"{NotebookHtml.Num(s.Opacity)}\"" : "";
            sb.Append($"<g class=\"series\" data-name=\"{NotebookHtml.Enc(s.Name)}\"{opacity}>");
            if (s.Kind != SeriesKind.Scatter)
                foreach (var segment in Segments(s, log))
                {
                    if (segment.Count == 1 && s.Kind == SeriesKind.Line)
                    {
                        var (x0, y0) = ToPixel(segment[0], xAxis, axis, left, top, pw, ph);
                        sb.Append($"<circle cx=\"{NotebookHtml.Num(x0)}\" cy=\"{NotebookHtml.Num(y0)}\" r=\"{NotebookHtml.Num(s.StrokeWidth)}\" fill=\"{color}\"/>");
                        continue;
                    }
                    sb.Append("<polyline fill=\"none\" stroke=\"").Append(color).Append("\" stroke-width=\"").Append(NotebookHtml.Num(s.StrokeWidth))
                      .Append(s.Dashed ? "\" stroke-dasharray=\"6 4" : "").Append("\" stroke-linejoin=\"round\" points=\"");
                    foreach (var p in segment)
                    {
                        var (px, py) = ToPixel(p, xAxis, axis, left, top, pw, ph);
                        sb.Append(NotebookHtml.Num(px, "0.#")).Append(',').Append(NotebookHtml.Num(py, "0.#")).Append(' ');
                    }
                    sb.Append("\"/>");
                }
            if (s.Kind != SeriesKind.Line)
                foreach (var p in Points(s, log))
                {
                    var (px, py) = ToPixel(p, xAxis, axis, left, top, pw, ph);
                    sb.Append($"<circle cx=\"{NotebookHtml.Num(px, "0.#")}\" cy=\"{NotebookHtml.Num(py, "0.#")}\" r=\"2.5\" fill=\"{color}\"/>");
                }
            sb.Append("</g>");
        }
        sb.Append("</g>");

        // legend (rows above the plot)
        for (int i = 0; i < Series.Count; i++)
        {
            var s = Series[i];
            string color = ColorOf(i);
            var (x0, row) = legend[i];
            double ly = legendTop + row * 16 + 8;
            if (s.Kind == SeriesKind.Scatter)
                sb.Append($"<circle cx=\"{NotebookHtml.Num(x0 + 9)}\" cy=\"{NotebookHtml.Num(ly)}\" r=\"3\" fill=\"{color}\"/>");
            else
                sb.Append($"<line x1=\"{NotebookHtml.Num(x0)}\" y1=\"{NotebookHtml.Num(ly)}\" x2=\"{NotebookHtml.Num(x0 + 18)}\" y2=\"{NotebookHtml.Num(ly)}\" stroke=\"{color}\" stroke-width=\"2.5\"{(s.Dashed ? " stroke-dasharray=\"5 3\"" : "")}/>");
            sb.Append($"<text x=\"{NotebookHtml.Num(x0 + 22)}\" y=\"{NotebookHtml.Num(ly + 4)}\">{NotebookHtml.Enc(LegendName(i, hasRight))}</text>");
        }
        sb.Append("</svg>");
        return sb.ToString();
    }

    /// <summary>Same as <see cref="ToSvg"/> (inline SVG is valid HTML).</summary>
    public string ToHtml() => ToSvg();

    static int s_clipIds;

    string LegendName(int i, bool hasRight) => Series[i].Name + (Series[i].Axis == YAxisSide.Right && hasRight ? " (right)" : "");

    string ColorOf(int i) => Series[i].Color ?? Palette[i % Palette.Length];

    Axis AxisFor(YAxisSide side, bool log, double ph)
    {
        var ys = Series.Where(s => s.Axis == side).SelectMany(s => Points(s, log).Select(p => p.Y)).ToList();
        int maxTicks = Math.Max(2, (int)(ph / 40));
        if (log)
        {
            var (lo, hi) = ys.Count == 0 ? (1.0, 10.0) : (ys.Min(), ys.Max());
            return Axis.Logarithmic(lo, hi, maxTicks);
        }
        var (min, max) = Extent(ys);
        return Axis.Linear(min, max, maxTicks);
    }

    static (double Min, double Max) Extent(List<double> values) => values.Count == 0 ? (0, 1) : (values.Min(), values.Max());

    static (double X, double Y) ToPixel((double X, double Y) p, Axis x, Axis y, double left, double top, double pw, double ph) =>
        (left + x.Fraction(p.X) * pw, top + (1 - y.Fraction(p.Y)) * ph);

    static bool Valid(double x, double y, bool logY) => double.IsFinite(x) && double.IsFinite(y) && (!logY || y > 0);

    static IEnumerable<(double X, double Y)> Points(ChartSeries s, bool logY)
    {
        for (int i = 0; i < s.Y.Count; i++)
            if (Valid(s.X[i], s.Y[i], logY)) yield return (s.X[i], s.Y[i]);
    }

    static List<List<(double X, double Y)>> Segments(ChartSeries s, bool logY)
    {
        var result = new List<List<(double, double)>>();
        List<(double, double)>? current = null;
        for (int i = 0; i < s.Y.Count; i++)
        {
            if (!Valid(s.X[i], s.Y[i], logY)) { current = null; continue; }
            if (current == null) { current = []; result.Add(current); }
            current.Add((s.X[i], s.Y[i]));
        }
        return result;
    }
}

/// <summary>Several charts side by side (wrapping to the notebook's width).</summary>
public sealed record ChartRow(IReadOnlyList<SvgChart> Charts)
{
    /// <summary>Creates a row from the given charts.</summary>
    public ChartRow(params SvgChart[] charts) : this((IReadOnlyList<SvgChart>)charts) { }

    /// <summary>The charts as HTML.</summary>
    public string ToHtml() =>
        "<div style=\"display:flex;flex-wrap:wrap;gap:12px\">" + string.Concat(Charts.Select(c => "<div>" + c.ToSvg() + "</div>")) + "</div>";
}
