using System.Globalization;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.Imaging;

/// <summary>One series of a line chart.</summary>
public sealed record PlotSeries(string Name, IReadOnlyList<(double X, double Y)> Points, Rgb24 Color);

/// <summary>
/// A small line chart rendered straight to pixels (axes, ticks, legend; text with <see cref="BitmapFont"/>), for the
/// CLI's loss charts where no browser is around. Notebooks use SVG charts instead.
/// </summary>
public static class LineChartImage
{
    public static Image<Rgb24> Render(string title, string xLabel, string yLabel, IReadOnlyList<PlotSeries> series, int width = 720, int height = 420, bool logY = false)
    {
        var img = new Image<Rgb24>(width, height, new Rgb24(255, 255, 255));
        var ink = new Rgb24(30, 30, 30);
        var grid = new Rgb24(225, 225, 225);
        int left = 80, right = 20, top = 40, bottom = 50;
        int pw = width - left - right, ph = height - top - bottom;
        BitmapFont.DrawText(img, title, left, 12, 2, ink);
        var pts = series.SelectMany(s => s.Points).Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y) && (!logY || p.Y > 0)).ToList();
        if (pts.Count == 0)
        {
            BitmapFont.DrawText(img, "(no data)", left + 10, top + 10, 1, ink);
            return img;
        }
        double Ty(double y) => logY ? Math.Log10(y) : y;
        double x0 = pts.Min(p => p.X), x1 = pts.Max(p => p.X);
        double y0 = pts.Min(p => Ty(p.Y)), y1 = pts.Max(p => Ty(p.Y));
        if (x1 <= x0) x1 = x0 + 1;
        if (y1 <= y0) { y1 = y0 + 1; y0 -= 1; }
        double pad = (y1 - y0) * 0.05;
        y0 -= pad; y1 += pad;
        int Px(double x) => left + (int)Math.Round((x - x0) / (x1 - x0) * (pw - 1));
        int Py(double y) => top + ph - 1 - (int)Math.Round((Ty(y) - y0) / (y1 - y0) * (ph - 1));

        for (int i = 0; i <= 4; i++)
        {
            int gy = top + (int)Math.Round(i * (ph - 1) / 4.0);
            for (int x = left; x < left + pw; x++) img[x, gy] = grid;
            double v = y1 - i * (y1 - y0) / 4;
            var label = (logY ? Math.Pow(10, v) : v).ToString("G3", CultureInfo.InvariantCulture);
            BitmapFont.DrawText(img, label, Math.Max(0, left - 6 - BitmapFont.MeasureWidth(label, 1)), gy - 4, 1, ink);
            int gx = left + (int)Math.Round(i * (pw - 1) / 4.0);
            for (int y = top; y < top + ph; y++) img[gx, y] = grid;
            var xl = (x0 + i * (x1 - x0) / 4).ToString("G4", CultureInfo.InvariantCulture);
            BitmapFont.DrawText(img, xl, gx - BitmapFont.MeasureWidth(xl, 1) / 2, top + ph + 6, 1, ink);
        }
        for (int x = left; x < left + pw; x++) img[x, top + ph - 1] = ink;
        for (int y = top; y < top + ph; y++) img[left, y] = ink;
        BitmapFont.DrawText(img, xLabel, left + pw / 2 - BitmapFont.MeasureWidth(xLabel, 1) / 2, height - 18, 1, ink);
        BitmapFont.DrawText(img, yLabel + (logY ? " (log)" : ""), 4, top - 14, 1, ink);

        int legendY = top + 4;
        foreach (var s in series)
        {
            var p = s.Points.Where(q => double.IsFinite(q.X) && double.IsFinite(q.Y) && (!logY || q.Y > 0)).OrderBy(q => q.X).ToList();
            for (int i = 1; i < p.Count; i++) Line(img, Px(p[i - 1].X), Py(p[i - 1].Y), Px(p[i].X), Py(p[i].Y), s.Color);
            if (p.Count == 1) img[Px(p[0].X), Py(p[0].Y)] = s.Color;
            int lx = left + pw - 10 - BitmapFont.MeasureWidth(s.Name, 1) - 20;
            for (int x = lx; x < lx + 14; x++) { img[x, legendY + 3] = s.Color; img[x, legendY + 4] = s.Color; }
            BitmapFont.DrawText(img, s.Name, lx + 18, legendY, 1, ink);
            legendY += 12;
        }
        return img;
    }

    /// <summary>Exponential moving average (the "smoothed" curve of TensorBoard-style charts).</summary>
    public static IReadOnlyList<(double X, double Y)> Smooth(IReadOnlyList<(double X, double Y)> points, double weight = 0.9)
    {
        var result = new List<(double, double)>(points.Count);
        double? last = null;
        foreach (var (x, y) in points)
        {
            last = last is null ? y : weight * last.Value + (1 - weight) * y;
            result.Add((x, last.Value));
        }
        return result;
    }

    static void Line(Image<Rgb24> img, int xa, int ya, int xb, int yb, Rgb24 c)
    {
        int dx = Math.Abs(xb - xa), dy = -Math.Abs(yb - ya), sx = xa < xb ? 1 : -1, sy = ya < yb ? 1 : -1, err = dx + dy;
        while (true)
        {
            if (xa >= 0 && ya >= 0 && xa < img.Width && ya < img.Height) img[xa, ya] = c;
            if (xa == xb && ya == yb) break;
            int e2 = 2 * err;
            if (e2 >= dy) { err += dy; xa += sx; }
            if (e2 <= dx) { err += dx; ya += sy; }
        }
    }
}
