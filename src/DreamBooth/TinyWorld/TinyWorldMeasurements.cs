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

    public NamedColor? Color { get; init; }
    public ShapeKind? Shape { get; init; }
    public ObjectSize? Size { get; init; }
    public GridPosition? Position { get; init; }
    public ObjectCount? Count { get; init; }

    /// <summary>Coverage-weighted centroid of the foreground (fractions of width/height).</summary>
    public double CentroidX { get; init; }
    public double CentroidY { get; init; }

    /// <summary>Mean half-extent of the objects' bounding boxes (fraction of the side).</summary>
    public double HalfExtent { get; init; }

    /// <summary>Foreground coverage as a fraction of the image area.</summary>
    public double AreaFraction { get; init; }

    /// <summary>Largest object's area divided by its bounding-box area (square 1, circle .79, cross .56, diamond/triangle .5).</summary>
    public double FillRatio { get; init; }

    /// <summary>Gaussian blur width (pixels) of the best-matching synthetic template: how soft the image is.</summary>
    public double BlurSigma { get; init; }

    /// <summary>Similarity (1 − normalised L1) of the largest object (centred at its centroid, scaled to unit area) with each shape's template.</summary>
    public IReadOnlyDictionary<ShapeKind, double> ShapeScores { get; init; } = new Dictionary<ShapeKind, double>();
}

/// <summary>
/// Pixel and shape measurements of tiny-world images, robust to blur, noise and low-resolution decoding.
/// <para>Method: (1) background = per-channel median of a border ring, classified as the nearest named colour in
/// CIELAB. (2) Soft matting: each pixel p is explained as bg + α·(c − bg) for the named colour c whose line fits it
/// best (least residual in RGB); α is the pixel's foreground coverage and c its colour vote. (3) Foreground = α above
/// half the (robust) peak coverage; 8-connected components smaller than a quarter of the largest are dropped.
/// (4) Colour = α²-weighted vote; position = coverage centroid → image thirds; count = components (capped at two);
/// size = bounding-box half-extent against the midpoint (geometric mean) of the nominal small/large extents for that
/// count. (5) Shape = best soft IoU between the largest object's coverage, resampled around its centroid at unit area,
/// and each shape's analytic template normalised the same way (translation- and scale-invariant template matching).</para>
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
        var grid = NormalizedObject.Extract(s, largest);
        var scores = ShapeFit.Scores(s, grid, out var blur);
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
            CentroidX = cx, CentroidY = cy, HalfExtent = half, AreaFraction = sum / (img.Width * img.Height),
            FillRatio = grid.Area / bboxArea, ShapeScores = scores, BlurSigma = blur,
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

    static double Median(IEnumerable<float> values)
    {
        var a = values.ToArray();
        Array.Sort(a);
        return a.Length % 2 == 1 ? a[a.Length / 2] : 0.5 * (a[a.Length / 2 - 1] + a[a.Length / 2]);
    }
}

/// <summary>
/// An object resampled on a fixed grid around its coverage centroid, at a scale where its area is 1
/// (grid spans ±<see cref="Extent"/> in units of √area): translation- and scale-invariant, rotation-sensitive.
/// </summary>
internal sealed class NormalizedObject
{
    public const int GridSize = 32;
    public const double Extent = 1.25;

    public required float[] Alpha { get; init; }
    public required float[] R { get; init; }
    public required float[] G { get; init; }
    public required float[] B { get; init; }
    public required double Area { get; init; }

    /// <summary>Index of the component in <see cref="Segmentation.Components"/>.</summary>
    public required int ComponentIndex { get; init; }

    /// <summary>Coverage centroid in pixel coordinates.</summary>
    public required double CenterX { get; init; }
    public required double CenterY { get; init; }

    /// <summary>The component's coverage in image space (zero outside its region).</summary>
    public required float[] Plane { get; init; }

    /// <summary>Grid coordinate of cell index k (cell centres), in √area units.</summary>
    public static double Coord(int k) => (-1 + (k + 0.5) * 2.0 / GridSize) * Extent;

    public static NormalizedObject Extract(Segmentation s, Component c)
    {
        var img = s.Image;
        int w = img.Width, h = img.Height;
        // Coverage of this component's region (its pixels and the blurred edge around them).
        var ci = s.Components.IndexOf(c);
        var plane = new float[w * h];
        double area = 0, sx = 0, sy = 0;
        for (var i = 0; i < w * h; i++)
        {
            if (s.Owner[i] != ci) continue;
            var a = s.Alpha[i];
            plane[i] = a;
            area += a; sx += a * (i % w + 0.5); sy += a * (i / w + 0.5);
        }
        double cx = sx / area, cy = sy / area, scale = Math.Sqrt(area);
        var n = GridSize * GridSize;
        var result = new NormalizedObject
        {
            Alpha = new float[n], R = new float[n], G = new float[n], B = new float[n], Area = area, ComponentIndex = ci, CenterX = cx, CenterY = cy, Plane = plane,
        };
        for (var j = 0; j < GridSize; j++)
            for (var i = 0; i < GridSize; i++)
            {
                double x = cx + Coord(i) * scale, y = cy + Coord(j) * scale;
                var k = j * GridSize + i;
                result.Alpha[k] = FloatImage.Sample(plane, w, h, x, y);
                result.R[k] = FloatImage.Sample(img.R, w, h, x, y);
                result.G[k] = FloatImage.Sample(img.G, w, h, x, y);
                result.B[k] = FloatImage.Sample(img.B, w, h, x, y);
            }
        return result;
    }

    /// <summary>Σ min(a, b) / Σ max(a, b): 1 for identical coverage maps.</summary>
    public static double SoftIoU(float[] a, float[] b)
    {
        double inter = 0, union = 0;
        for (var i = 0; i < a.Length; i++) { inter += Math.Min(a[i], b[i]); union += Math.Max(a[i], b[i]); }
        return union > 0 ? inter / union : 0;
    }
}

/// <summary>Analytic shape templates on the normalised grid (unit area, centred at the centroid, 4x4 supersampled).</summary>
internal static class ShapeTemplates
{
    static readonly Lazy<float[][]> Templates = new(() =>
        Enum.GetValues<ShapeKind>().Select(s => Render((u, v) => ShapeGeometry.Contains(s, u, v), ShapeGeometry.Area(s), ShapeGeometry.CentroidV(s))).ToArray());

    public static float[] Get(ShapeKind shape) => Templates.Value[(int)shape];

    /// <summary>Coverage of a unit-coordinate region on the grid, given its area and vertical centroid in unit coordinates.</summary>
    public static float[] Render(Func<double, double, bool> inside, double unitArea, double centroidV)
    {
        const int sub = 4;
        var g = NormalizedObject.GridSize;
        var s = Math.Sqrt(unitArea);
        var cell = 2.0 * NormalizedObject.Extent / g;
        var t = new float[g * g];
        for (var j = 0; j < g; j++)
            for (var i = 0; i < g; i++)
            {
                var hits = 0;
                for (var b = 0; b < sub; b++)
                    for (var a = 0; a < sub; a++)
                    {
                        var u = NormalizedObject.Coord(i) + ((a + 0.5) / sub - 0.5) * cell;
                        var v = NormalizedObject.Coord(j) + ((b + 0.5) / sub - 0.5) * cell;
                        if (inside(u * s, v * s + centroidV)) hits++;
                    }
                t[j * g + i] = hits / (float)(sub * sub);
            }
        return t;
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
    public static readonly double[] Sigmas = [0, 0.6, 1.0, 1.5, 2.0, 3.0];

    /// <summary>Per-shape similarity in [0, 1] (1 − Σ|observed − synthetic| / Σ(observed + synthetic), best blur width).</summary>
    public static Dictionary<ShapeKind, double> Scores(Segmentation s, NormalizedObject obj, out double bestSigma)
    {
        var window = FitWindow.For(s, obj);
        var scores = new Dictionary<ShapeKind, double>();
        bestSigma = 0;
        var bestOverall = double.MinValue;
        foreach (var shape in Enum.GetValues<ShapeKind>())
        {
            var half = Math.Sqrt(obj.Area / ShapeGeometry.Area(shape));
            var synth = window.Synthesize((u, v) => ShapeGeometry.Contains(shape, u, v) ? ((byte)0, (byte)0, (byte)0) : null,
                obj.CenterX, obj.CenterY - ShapeGeometry.CentroidV(shape) * half, half, (0, 0, 0), colors: false);
            var best = double.MinValue;
            foreach (var sigma in Sigmas)
            {
                var score = window.CoverageScore(synth.Blurred(sigma).Cover);
                if (score > best) best = score;
                if (score > bestOverall) { bestOverall = score; bestSigma = sigma; }
            }
            scores[shape] = best;
        }
        return scores;
    }
}

/// <summary>Synthetic coverage and colours of a template in a padded window around an object's region.</summary>
internal sealed record Synthetic(int Width, int Height, float[] Cover, float[]? R, float[]? G, float[]? B)
{
    public Synthetic Blurred(double sigma) => sigma <= 0 ? this : new Synthetic(Width, Height,
        Blur(Cover, Width, Height, sigma),
        R is null ? null : Blur(R, Width, Height, sigma), G is null ? null : Blur(G, Width, Height, sigma), B is null ? null : Blur(B, Width, Height, sigma));

    /// <summary>Separable Gaussian blur that treats outside-window values as the nearest edge value.</summary>
    static float[] Blur(float[] src, int w, int h, double sigma)
    {
        var r = (int)Math.Ceiling(3 * sigma);
        var k = new float[2 * r + 1];
        double sum = 0;
        for (var i = -r; i <= r; i++) sum += k[i + r] = (float)Math.Exp(-i * i / (2 * sigma * sigma));
        for (var i = 0; i < k.Length; i++) k[i] = (float)(k[i] / sum);
        var tmp = new float[w * h];
        var dst = new float[w * h];
        for (var y = 0; y < h; y++)
            for (var x = 0; x < w; x++)
            {
                float acc = 0;
                for (var j = -r; j <= r; j++) acc += k[j + r] * src[y * w + Math.Clamp(x + j, 0, w - 1)];
                tmp[y * w + x] = acc;
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

/// <summary>The pixels owned by one component, and a padded window around them for synthetic templates.</summary>
internal sealed class FitWindow
{
    public required Segmentation Segmentation { get; init; }
    public required NormalizedObject Object { get; init; }
    public required int X0 { get; init; }
    public required int Y0 { get; init; }
    public required int X1 { get; init; }
    public required int Y1 { get; init; }
    public required int OffsetX { get; init; }
    public required int OffsetY { get; init; }
    public required int Width { get; init; }
    public required int Height { get; init; }

    public static FitWindow For(Segmentation s, NormalizedObject obj)
    {
        int w = s.Image.Width, h = s.Image.Height;
        int x0 = w, y0 = h, x1 = -1, y1 = -1;
        for (var i = 0; i < w * h; i++)
        {
            if (s.Owner[i] != obj.ComponentIndex) continue;
            int x = i % w, y = i / w;
            x0 = Math.Min(x0, x); x1 = Math.Max(x1, x); y0 = Math.Min(y0, y); y1 = Math.Max(y1, y);
        }
        var pad = (int)Math.Ceiling(3 * ShapeFit.Sigmas[^1]);
        return new FitWindow
        {
            Segmentation = s, Object = obj, X0 = x0, Y0 = y0, X1 = x1, Y1 = y1,
            OffsetX = x0 - pad, OffsetY = y0 - pad, Width = x1 - x0 + 1 + 2 * pad, Height = y1 - y0 + 1 + 2 * pad,
        };
    }

    /// <summary>Pixels (image index, window index) of the object's region.</summary>
    public IEnumerable<(int Image, int Window)> Pixels()
    {
        var w = Segmentation.Image.Width;
        for (var y = Y0; y <= Y1; y++)
            for (var x = X0; x <= X1; x++)
            {
                var i = y * w + x;
                if (Segmentation.Owner[i] == Object.ComponentIndex) yield return (i, (y - OffsetY) * Width + (x - OffsetX));
            }
    }

    /// <summary>Renders a unit-coordinate paint function centred at (cx, cy) pixels with half-extent <paramref name="half"/> pixels, 4x4 supersampled, over <paramref name="background"/>.</summary>
    public Synthetic Synthesize(Func<double, double, (byte R, byte G, byte B)?> paint, double cx, double cy, double half,
        (double R, double G, double B) background, bool colors = true)
    {
        const int sub = 4;
        var n = Width * Height;
        var cover = new float[n];
        float[]? r = colors ? new float[n] : null, g = colors ? new float[n] : null, b = colors ? new float[n] : null;
        for (var y = 0; y < Height; y++)
            for (var x = 0; x < Width; x++)
            {
                var k = y * Width + x;
                double hits = 0, sr = 0, sg = 0, sb = 0;
                for (var j = 0; j < sub; j++)
                    for (var i = 0; i < sub; i++)
                    {
                        var u = (OffsetX + x + (i + 0.5) / sub - cx) / half;
                        var v = (OffsetY + y + (j + 0.5) / sub - cy) / half;
                        if (paint(u, v) is { } c) { hits++; sr += c.R; sg += c.G; sb += c.B; }
                        else { sr += background.R; sg += background.G; sb += background.B; }
                    }
                cover[k] = (float)(hits / (sub * sub));
                if (colors) { r![k] = (float)(sr / (sub * sub)); g![k] = (float)(sg / (sub * sub)); b![k] = (float)(sb / (sub * sub)); }
            }
        return new Synthetic(Width, Height, cover, r, g, b);
    }

    /// <summary>1 − Σ|observed − synthetic| / Σ(observed + synthetic) over the region's coverage.</summary>
    public double CoverageScore(float[] syntheticCover)
    {
        double diff = 0, total = 0;
        foreach (var (i, k) in Pixels())
        {
            double o = Segmentation.Alpha[i], q = syntheticCover[k];
            diff += Math.Abs(o - q); total += o + q;
        }
        return total > 0 ? 1 - diff / total : 0;
    }
}
