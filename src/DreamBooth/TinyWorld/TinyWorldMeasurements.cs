using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.TinyWorld;

/// <summary>What <see cref="TinyWorldMeasurements.Measure"/> found in an image. Attribute fields are null when no object is present.</summary>
public sealed record SceneMeasurement
{
    /// <summary>Whether a foreground object was found.</summary>
    public bool ObjectPresent { get; init; }

    /// <summary>Nearest named colour to the median border colour.</summary>
    public NamedColor Background { get; init; }

    /// <summary>CIELAB distance between the border colour and <see cref="Background"/> (how clean the background is).</summary>
    public double BackgroundDeltaE { get; init; }

    /// <summary>Median border colour (sRGB 0..255).</summary>
    public (double R, double G, double B) BackgroundRgb { get; init; }

    /// <summary>Colour of the object(s): α²-weighted vote of the per-pixel matting colours.</summary>
    public NamedColor? Color { get; init; }

    /// <summary>Best-fitting shape of the largest object (see <see cref="ShapeScores"/>).</summary>
    public ShapeKind? Shape { get; init; }

    /// <summary>Small or large, from <see cref="HalfExtent"/>; position from the centroid's thirds; count from components.</summary>
    public ObjectSize? Size { get; init; }
    public GridPosition? Position { get; init; }
    public ObjectCount? Count { get; init; }

    /// <summary>Coverage-weighted centroid of the foreground (fractions of width/height).</summary>
    public double CentroidX { get; init; }
    public double CentroidY { get; init; }

    /// <summary>Mean half-extent of the objects implied by their coverage area and recognised shape (fraction of the side).</summary>
    public double HalfExtent { get; init; }

    /// <summary>Foreground coverage as a fraction of the image area.</summary>
    public double AreaFraction { get; init; }

    /// <summary>Largest object's area divided by its bounding-box area (square 1, circle .79, cross .56, diamond/triangle .5).</summary>
    public double FillRatio { get; init; }

    /// <summary>Gaussian blur width (pixels) of the best-matching synthetic template: how soft the image is.</summary>
    public double BlurSigma { get; init; }

    /// <summary>Fit (1 − normalised L1 of coverage, best blur width) of each shape, synthesised at the largest object's area and centroid.</summary>
    public IReadOnlyDictionary<ShapeKind, double> ShapeScores { get; init; } = new Dictionary<ShapeKind, double>();
}

/// <summary>
/// Pixel and shape measurements of tiny-world images, robust to blur, noise and low-resolution decoding.
/// <para>Method: (1) background = per-channel median of a border ring, classified as the nearest named colour in
/// CIELAB (ΔE76). (2) Soft matting: each pixel p is explained as bg + α·(c − bg) for the named colour c whose line
/// fits it best (least RGB residual); α is the pixel's foreground coverage and c its colour vote. Pixels far from
/// every such line (internal edges of a two-colour object) are fitted as bg + a·(c1 − bg) + b·(c2 − bg), α = a + b. (3) Foreground =
/// α above half the robust peak coverage; 8-connected components smaller than a quarter of the largest are dropped;
/// each component owns the pixels within 3 px of it (its blurred edge). (4) Colour = α²-weighted vote; position =
/// coverage centroid → image thirds; count = components (capped at two). (5) Shape = analysis by synthesis: every
/// shape is rendered with the object's coverage area and centroid (both blur-invariant), blurred with several
/// Gaussian widths, and compared with the observed coverage (1 − normalised L1); the best fit wins. (6) Size = the
/// half-extent implied by each object's area for the recognised shape, against the geometric mean of the nominal
/// small/large half-extents for the detected count.</para>
/// <para>Validated on 500 held-out renders (see the tests): 100 % on clean renders for every attribute; shape
/// 100 % after blur σ=1 px + noise σ=8 and after 2x down/up-sampling (+ blur 0.5 + noise 6), 94.4 % after 4x (small
/// shapes become 3-px blobs; size 98.6 %); background, colour and position stay at 100 % in all of these. (With the
/// earlier small half-extent of 0.08: shape 99.6 %, 99.6 % and 87 %.)</para>
/// </summary>
public static class TinyWorldMeasurements
{
    /// <summary>Measures a tiny-world image of any size.</summary>
    public static SceneMeasurement Measure(Image<Rgb24> image) => Measure(Segmentation.Compute(FloatImage.From(image)));

    internal static SceneMeasurement Measure(Segmentation s)
    {
        var result = new SceneMeasurement
        {
            Background = s.Background, BackgroundDeltaE = s.BackgroundDeltaE, BackgroundRgb = s.BackgroundRgb,
        };
        if (!s.ObjectPresent) return result;
        var img = s.Image;
        // Colour vote.
        var votes = new double[TinyWorldPalette.All.Count];
        double sum = 0, sx = 0, sy = 0;
        foreach (var i in s.ForegroundPixels)
        {
            var a = s.Alpha[i];
            if (a >= s.Threshold) votes[s.ColorIndex[i]] += a * a;
            sum += a; sx += a * (i % img.Width + 0.5); sy += a * (i / img.Width + 0.5);
        }
        var color = (NamedColor)Array.IndexOf(votes, votes.Max());
        double cx = sx / sum / img.Width, cy = sy / sum / img.Height;
        var position = TinyWorldGeometry.FromCell(Third(cx), Third(cy));
        var count = s.Components.Count >= 2 ? ObjectCount.Two : ObjectCount.One;
        var largest = s.Components[0];
        var region = ObjectRegion.Extract(s, 0);
        var scores = ShapeFit.Scores(FitWindow.For(s, region), out var blur);
        var best = scores.MaxBy(kv => kv.Value).Key;
        // Size: half-extent implied by each object's coverage area (blur-invariant) for the recognised shape.
        var half = Enumerable.Range(0, s.Components.Count)
            .Average(ci => Math.Sqrt(s.RegionArea(ci) / ShapeGeometry.Area(best))) / Math.Sqrt(img.Width * (double)img.Height);
        var threshold = Math.Sqrt(TinyWorldGeometry.HalfExtent(ObjectSize.Small, count) * TinyWorldGeometry.HalfExtent(ObjectSize.Large, count));
        var size = half >= threshold ? ObjectSize.Large : ObjectSize.Small;
        var bboxArea = (largest.MaxX - largest.MinX + 1) * (double)(largest.MaxY - largest.MinY + 1);
        return result with
        {
            ObjectPresent = true, Color = color, Shape = best, Size = size, Position = position, Count = count,
            CentroidX = cx, CentroidY = cy, HalfExtent = half,
            AreaFraction = Enumerable.Range(0, s.Components.Count).Sum(s.RegionArea) / (img.Width * img.Height),
            FillRatio = region.Area / bboxArea, ShapeScores = scores, BlurSigma = blur,
        };

        static int Third(double f) => f < 1.0 / 3 ? 0 : f < 2.0 / 3 ? 1 : 2;
    }
}

/// <summary>One 8-connected foreground component.</summary>
internal sealed record Component(int[] Pixels, int MinX, int MinY, int MaxX, int MaxY);

/// <summary>Background estimate, soft coverage (matting against named colours) and foreground components of an image.</summary>
internal sealed class Segmentation
{
    /// <summary>Colours closer than this (RGB Euclidean) to the background are not used as foreground lines.</summary>
    const double MinLineLength = 60;

    public required FloatImage Image { get; init; }
    public required (double R, double G, double B) BackgroundRgb { get; init; }
    public required NamedColor Background { get; init; }
    public required double BackgroundDeltaE { get; init; }
    public required float[] Alpha { get; init; }
    public required byte[] ColorIndex { get; init; }
    public required double Threshold { get; init; }
    public required List<Component> Components { get; init; }

    /// <summary>For each pixel, the index of the component within <see cref="RegionRadius"/> pixels (nearest wins), else -1.</summary>
    public required int[] Owner { get; init; }

    /// <summary>How far around a component its (blurred) coverage is collected.</summary>
    public const int RegionRadius = 3;

    public bool ObjectPresent => Components.Count > 0;

    /// <summary>Coverage area (Σα) of component <paramref name="ci"/>'s region, in pixels.</summary>
    public double RegionArea(int ci)
    {
        double a = 0;
        for (var i = 0; i < Owner.Length; i++) if (Owner[i] == ci) a += Alpha[i];
        return a;
    }
    public IEnumerable<int> ForegroundPixels => Components.SelectMany(c => c.Pixels);

    public static Segmentation Compute(FloatImage img)
    {
        int w = img.Width, h = img.Height, n = w * h;
        if (w < 8 || h < 8) throw new ArgumentException($"Image {w}x{h} is too small to measure; it must be at least 8x8 pixels.", nameof(img));
        // 1. Background: per-channel median of a border ring (robust to an object touching the border).
        var ring = Math.Max(1, Math.Min(w, h) / 32);
        var border = new List<int>();
        for (var y = 0; y < h; y++)
            for (var x = 0; x < w; x++)
                if (x < ring || y < ring || x >= w - ring || y >= h - ring) border.Add(y * w + x);
        var bg = (R: Median(border.Select(i => img.R[i])), G: Median(border.Select(i => img.G[i])), B: Median(border.Select(i => img.B[i])));
        var (bgName, bgDelta) = TinyWorldPalette.Nearest(bg.R, bg.G, bg.B);
        // 2. Soft matting against every named colour far enough from the background.
        var lines = new List<(int Index, double Er, double Eg, double Eb, double Len2)>();
        foreach (var c in TinyWorldPalette.All)
        {
            var (r, g, b) = TinyWorldPalette.ToRgb(c);
            double er = r - bg.R, eg = g - bg.G, eb = b - bg.B, len2 = er * er + eg * eg + eb * eb;
            if (len2 >= MinLineLength * MinLineLength) lines.Add(((int)c, er, eg, eb, len2));
        }
        var alpha = new float[n];
        var colorIndex = new byte[n];
        for (var i = 0; i < n; i++)
        {
            double dr = img.R[i] - bg.R, dg = img.G[i] - bg.G, db = img.B[i] - bg.B;
            var bestRes = double.MaxValue;
            foreach (var l in lines)
            {
                var a = Math.Clamp((dr * l.Er + dg * l.Eg + db * l.Eb) / l.Len2, 0, 1);
                double rr = dr - a * l.Er, rg = dg - a * l.Eg, rb = db - a * l.Eb, res = rr * rr + rg * rg + rb * rb;
                if (res < bestRes) { bestRes = res; alpha[i] = (float)a; colorIndex[i] = (byte)l.Index; }
            }
            // A pixel far from every background→colour line is a mix of two object colours (an internal edge of a
            // multi-colour object): fit bg + a·(c1 − bg) + b·(c2 − bg) with a, b ≥ 0, a + b ≤ 1 and take α = a + b.
            var d2 = dr * dr + dg * dg + db * db;
            if (bestRes > Math.Max(PairResidual * PairResidual, 0.04 * d2))
                FitPair(lines, dr, dg, db, ref bestRes, ref alpha[i], ref colorIndex[i]);
        }
        // 3. Threshold at half the robust peak coverage (a smeared object may never reach full coverage).
        var sorted = (float[])alpha.Clone();
        Array.Sort(sorted);
        var peak = sorted[Math.Max(0, n - 1 - n / 400)];
        var threshold = 0.5 * Math.Clamp(peak, 0.5, 1.0);
        var components = new List<Component>();
        var minArea = Math.Max(4, 0.002 * n);
        if (peak >= 0.3)
        {
            var label = new int[n];
            var stack = new Stack<int>();
            for (var start = 0; start < n; start++)
            {
                if (label[start] != 0 || alpha[start] < threshold) continue;
                var pixels = new List<int>();
                label[start] = components.Count + 1;
                stack.Push(start);
                int minX = w, minY = h, maxX = -1, maxY = -1;
                while (stack.Count > 0)
                {
                    var p = stack.Pop();
                    pixels.Add(p);
                    int px = p % w, py = p / w;
                    minX = Math.Min(minX, px); maxX = Math.Max(maxX, px); minY = Math.Min(minY, py); maxY = Math.Max(maxY, py);
                    for (var dy = -1; dy <= 1; dy++)
                        for (var dx = -1; dx <= 1; dx++)
                        {
                            int qx = px + dx, qy = py + dy;
                            if (qx < 0 || qy < 0 || qx >= w || qy >= h) continue;
                            var q = qy * w + qx;
                            if (label[q] == 0 && alpha[q] >= threshold) { label[q] = label[start]; stack.Push(q); }
                        }
                }
                components.Add(new Component(pixels.ToArray(), minX, minY, maxX, maxY));
            }
            components.Sort((a, b) => b.Pixels.Length.CompareTo(a.Pixels.Length));
            if (components.Count > 0)
            {
                var keep = Math.Max(minArea, 0.25 * components[0].Pixels.Length);
                components.RemoveAll(c => c.Pixels.Length < keep);
            }
        }
        // 4. Regions: multi-source breadth-first growth of every component by RegionRadius pixels (8-connected).
        var owner = new int[n];
        Array.Fill(owner, -1);
        var frontier = new List<int>();
        for (var ci = 0; ci < components.Count; ci++)
            foreach (var p in components[ci].Pixels) { owner[p] = ci; frontier.Add(p); }
        for (var step = 0; step < RegionRadius; step++)
        {
            var next = new List<int>();
            foreach (var p in frontier)
            {
                int px = p % w, py = p / w;
                for (var dy = -1; dy <= 1; dy++)
                    for (var dx = -1; dx <= 1; dx++)
                    {
                        int qx = px + dx, qy = py + dy;
                        if (qx < 0 || qy < 0 || qx >= w || qy >= h) continue;
                        var q = qy * w + qx;
                        if (owner[q] == -1) { owner[q] = owner[p]; next.Add(q); }
                    }
            }
            frontier = next;
        }
        return new Segmentation
        {
            Owner = owner,
            Image = img, BackgroundRgb = bg, Background = bgName, BackgroundDeltaE = bgDelta, Alpha = alpha,
            ColorIndex = colorIndex, Threshold = threshold, Components = components,
        };
    }

    /// <summary>RGB residual above which a pixel is also fitted as a mix of two object colours.</summary>
    const double PairResidual = 20;

    static void FitPair(List<(int Index, double Er, double Eg, double Eb, double Len2)> lines, double dr, double dg, double db,
        ref double bestRes, ref float alpha, ref byte colorIndex)
    {
        for (var p = 0; p < lines.Count; p++)
            for (var q = p + 1; q < lines.Count; q++)
            {
                var (e1, e2) = (lines[p], lines[q]);
                // Unconstrained least squares in (a, b); then the a + b = 1 edge (no background) as a fallback.
                double g11 = e1.Len2, g22 = e2.Len2, g12 = e1.Er * e2.Er + e1.Eg * e2.Eg + e1.Eb * e2.Eb;
                double h1 = dr * e1.Er + dg * e1.Eg + db * e1.Eb, h2 = dr * e2.Er + dg * e2.Eg + db * e2.Eb;
                var det = g11 * g22 - g12 * g12;
                double a, b;
                if (Math.Abs(det) > 1e-6 * g11 * g22)
                {
                    a = (h1 * g22 - h2 * g12) / det; b = (h2 * g11 - h1 * g12) / det;
                    if (a < 0 || b < 0 || a + b > 1) { a = -1; b = -1; }
                }
                else { a = -1; b = -1; }
                if (a < 0)
                {
                    // On the edge a + b = 1: d = e2 + a (e1 − e2).
                    double fr = e1.Er - e2.Er, fg = e1.Eg - e2.Eg, fb = e1.Eb - e2.Eb, ff = fr * fr + fg * fg + fb * fb;
                    a = ff > 0 ? Math.Clamp(((dr - e2.Er) * fr + (dg - e2.Eg) * fg + (db - e2.Eb) * fb) / ff, 0, 1) : 0;
                    b = 1 - a;
                }
                double rr = dr - a * e1.Er - b * e2.Er, rg = dg - a * e1.Eg - b * e2.Eg, rb = db - a * e1.Eb - b * e2.Eb;
                var res = rr * rr + rg * rg + rb * rb;
                if (res < bestRes)
                {
                    bestRes = res; alpha = (float)Math.Min(1, a + b); colorIndex = (byte)(a >= b ? e1.Index : e2.Index);
                }
            }
    }

    static double Median(IEnumerable<float> values)
    {
        var a = values.ToArray();
        Array.Sort(a);
        return a.Length % 2 == 1 ? a[a.Length / 2] : 0.5 * (a[a.Length / 2 - 1] + a[a.Length / 2]);
    }
}

/// <summary>One object's region: its component pixels plus the blurred edge around them, with coverage area and centroid.</summary>
internal sealed class ObjectRegion
{
    /// <summary>Index of the component in <see cref="Segmentation.Components"/>.</summary>
    public required int ComponentIndex { get; init; }

    /// <summary>Σα over the region, in pixels (invariant under blur).</summary>
    public required double Area { get; init; }

    /// <summary>Coverage centroid in pixel coordinates (invariant under symmetric blur).</summary>
    public required double CenterX { get; init; }
    public required double CenterY { get; init; }

    public static ObjectRegion Extract(Segmentation s, int componentIndex)
    {
        var w = s.Image.Width;
        double area = 0, sx = 0, sy = 0;
        for (var i = 0; i < s.Owner.Length; i++)
        {
            if (s.Owner[i] != componentIndex) continue;
            var a = s.Alpha[i];
            area += a; sx += a * (i % w + 0.5); sy += a * (i / w + 0.5);
        }
        return new ObjectRegion { ComponentIndex = componentIndex, Area = area, CenterX = sx / area, CenterY = sy / area };
    }
}

/// <summary>
/// Analysis by synthesis of an object's shape: for each candidate shape, render it (supersampled) with the object's
/// coverage area and centroid — both invariant under blur — blur it with a range of Gaussian widths, and compare with
/// the observed coverage in the object's region. A blurred image is thus compared with equally blurred templates,
/// which keeps soft corners from looking like a different shape.
/// </summary>
internal static class ShapeFit
{
    /// <summary>Gaussian widths (pixels) tried for the synthetic templates.</summary>
    public static readonly double[] Sigmas = [0, 0.7, 1.2, 2.0];

    /// <summary>Per-shape similarity in [0, 1] (1 − Σ|observed − synthetic| / Σ(observed + synthetic), best blur width).</summary>
    public static Dictionary<ShapeKind, double> Scores(FitWindow window, out double bestSigma)
    {
        var obj = window.Object;
        var scores = new Dictionary<ShapeKind, double>();
        bestSigma = 0;
        var bestOverall = double.MinValue;
        foreach (var shape in Enum.GetValues<ShapeKind>())
        {
            var half = Math.Sqrt(obj.Area / ShapeGeometry.Area(shape));
            var cover = window.Coverage(shape, obj.CenterX, obj.CenterY - ShapeGeometry.CentroidV(shape) * half, half);
            var best = double.MinValue;
            foreach (var sigma in Sigmas)
            {
                var score = window.CoverageScore(PlaneBlur.Apply(cover, window.Width, window.Height, sigma));
                if (score > best) best = score;
                if (score > bestOverall) { bestOverall = score; bestSigma = sigma; }
            }
            scores[shape] = best;
        }
        return scores;
    }
}

/// <summary>Separable Gaussian blur of a plane; outside values repeat the nearest edge value.</summary>
internal static class PlaneBlur
{
    public static float[] Apply(float[] src, int w, int h, double sigma)
    {
        if (sigma <= 0) return src;
        var r = (int)Math.Ceiling(3 * sigma);
        var k = new float[2 * r + 1];
        double sum = 0;
        for (var i = -r; i <= r; i++) sum += k[i + r] = (float)Math.Exp(-i * i / (2 * sigma * sigma));
        for (var i = 0; i < k.Length; i++) k[i] = (float)(k[i] / sum);
        var tmp = new float[w * h];
        var dst = new float[w * h];
        for (var y = 0; y < h; y++)
        {
            var row = y * w;
            for (var x = 0; x < w; x++)
            {
                float acc = 0;
                for (var j = -r; j <= r; j++) acc += k[j + r] * src[row + Math.Clamp(x + j, 0, w - 1)];
                tmp[row + x] = acc;
            }
        }
        for (var y = 0; y < h; y++)
            for (var x = 0; x < w; x++)
            {
                float acc = 0;
                for (var j = -r; j <= r; j++) acc += k[j + r] * tmp[Math.Clamp(y + j, 0, h - 1) * w + x];
                dst[y * w + x] = acc;
            }
        return dst;
    }
}

/// <summary>The pixels of one object's region, and a padded window around them in which synthetic templates are drawn.</summary>
internal sealed class FitWindow
{
    const int Sub = 4;

    public required Segmentation Segmentation { get; init; }
    public required ObjectRegion Object { get; init; }
    public required int OffsetX { get; init; }
    public required int OffsetY { get; init; }
    public required int Width { get; init; }
    public required int Height { get; init; }

    /// <summary>Image indices of the region's pixels.</summary>
    public required int[] ImageIndex { get; init; }

    /// <summary>Window indices of the same pixels.</summary>
    public required int[] WindowIndex { get; init; }

    public static FitWindow For(Segmentation s, ObjectRegion obj)
    {
        int w = s.Image.Width, h = s.Image.Height;
        int x0 = w, y0 = h, x1 = -1, y1 = -1;
        var pixels = new List<int>();
        for (var i = 0; i < w * h; i++)
        {
            if (s.Owner[i] != obj.ComponentIndex) continue;
            pixels.Add(i);
            int x = i % w, y = i / w;
            x0 = Math.Min(x0, x); x1 = Math.Max(x1, x); y0 = Math.Min(y0, y); y1 = Math.Max(y1, y);
        }
        var pad = (int)Math.Ceiling(3 * ShapeFit.Sigmas[^1]);
        int ox = x0 - pad, oy = y0 - pad, ww = x1 - x0 + 1 + 2 * pad;
        return new FitWindow
        {
            Segmentation = s, Object = obj, OffsetX = ox, OffsetY = oy, Width = ww, Height = y1 - y0 + 1 + 2 * pad,
            ImageIndex = pixels.ToArray(),
            WindowIndex = pixels.Select(i => (i / w - oy) * ww + (i % w - ox)).ToArray(),
        };
    }

    /// <summary>Window pixel range covered by a template centred at (cx, cy) with half-extent <paramref name="half"/> (pixels).</summary>
    (int X0, int X1, int Y0, int Y1) Span(double cx, double cy, double half) => (
        Math.Max(0, (int)Math.Floor(cx - half) - OffsetX - 1), Math.Min(Width - 1, (int)Math.Ceiling(cx + half) - OffsetX + 1),
        Math.Max(0, (int)Math.Floor(cy - half) - OffsetY - 1), Math.Min(Height - 1, (int)Math.Ceiling(cy + half) - OffsetY + 1));

    /// <summary>4x4-supersampled coverage of a shape centred at (cx, cy) pixels with half-extent <paramref name="half"/> pixels.</summary>
    public float[] Coverage(ShapeKind shape, double cx, double cy, double half)
    {
        var cover = new float[Width * Height];
        var (x0, x1, y0, y1) = Span(cx, cy, half);
        for (var y = y0; y <= y1; y++)
            for (var x = x0; x <= x1; x++)
            {
                var hits = 0;
                for (var j = 0; j < Sub; j++)
                {
                    var v = (OffsetY + y + (j + 0.5) / Sub - cy) / half;
                    for (var i = 0; i < Sub; i++)
                        if (ShapeGeometry.Contains(shape, (OffsetX + x + (i + 0.5) / Sub - cx) / half, v)) hits++;
                }
                cover[y * Width + x] = hits / (float)(Sub * Sub);
            }
        return cover;
    }

    /// <summary>4x4-supersampled coverage and colours of a paint function (unit coordinates) over a background colour.</summary>
    public (float[] Cover, float[] R, float[] G, float[] B) Paint(Func<double, double, (byte R, byte G, byte B)?> paint,
        double cx, double cy, double half, (double R, double G, double B) background)
    {
        var n = Width * Height;
        var cover = new float[n];
        float[] r = new float[n], g = new float[n], b = new float[n];
        Array.Fill(r, (float)background.R); Array.Fill(g, (float)background.G); Array.Fill(b, (float)background.B);
        var (x0, x1, y0, y1) = Span(cx, cy, half);
        for (var y = y0; y <= y1; y++)
            for (var x = x0; x <= x1; x++)
            {
                double hits = 0, sr = 0, sg = 0, sb = 0;
                for (var j = 0; j < Sub; j++)
                    for (var i = 0; i < Sub; i++)
                    {
                        var c = paint((OffsetX + x + (i + 0.5) / Sub - cx) / half, (OffsetY + y + (j + 0.5) / Sub - cy) / half);
                        if (c is { } col) { hits++; sr += col.R; sg += col.G; sb += col.B; }
                        else { sr += background.R; sg += background.G; sb += background.B; }
                    }
                var k = y * Width + x;
                cover[k] = (float)(hits / (Sub * Sub));
                r[k] = (float)(sr / (Sub * Sub)); g[k] = (float)(sg / (Sub * Sub)); b[k] = (float)(sb / (Sub * Sub));
            }
        return (cover, r, g, b);
    }

    /// <summary>1 − Σ|observed − synthetic| / Σ(observed + synthetic) over the region's coverage.</summary>
    public double CoverageScore(float[] syntheticCover)
    {
        double diff = 0, total = 0;
        var alpha = Segmentation.Alpha;
        for (var p = 0; p < ImageIndex.Length; p++)
        {
            double o = alpha[ImageIndex[p]], q = syntheticCover[WindowIndex[p]];
            diff += Math.Abs(o - q); total += o + q;
        }
        return total > 0 ? 1 - diff / total : 0;
    }
}
