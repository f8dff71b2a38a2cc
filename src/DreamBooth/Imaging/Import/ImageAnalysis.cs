using System.Numerics;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using SixLabors.ImageSharp.Processing.Processors.Transforms;

namespace DreamBooth.Imaging.Import;

/// <summary>A luma plane (Rec. 601 weights, 0–255 floats) used by the crop and quality checks.</summary>
public sealed class LumaPlane
{
    public LumaPlane(int width, int height, float[] pixels)
    {
        if (pixels.Length != width * height) throw new ArgumentException($"expected {width * height} pixels, got {pixels.Length}", nameof(pixels));
        Width = width;
        Height = height;
        Pixels = pixels;
    }

    public int Width { get; }

    public int Height { get; }

    /// <summary>Row-major luma values.</summary>
    public float[] Pixels { get; }

    public float this[int x, int y] => Pixels[y * Width + x];

    /// <summary>The luma of an RGB image.</summary>
    public static LumaPlane From(Image<Rgb24> image)
    {
        var px = new float[image.Width * image.Height];
        int w = image.Width;
        image.ProcessPixelRows(acc =>
        {
            for (int y = 0; y < acc.Height; y++)
            {
                var row = acc.GetRowSpan(y);
                for (int x = 0; x < row.Length; x++)
                    px[y * w + x] = 0.299f * row[x].R + 0.587f * row[x].G + 0.114f * row[x].B;
            }
        });
        return new LumaPlane(image.Width, image.Height, px);
    }

    /// <summary>The luma of <paramref name="image"/> resized to exactly <paramref name="width"/>×<paramref name="height"/>.</summary>
    public static LumaPlane FromResized(Image<Rgb24> image, int width, int height, IResampler? sampler = null)
    {
        if (image.Width == width && image.Height == height) return From(image);
        using var small = image.Clone(c => c.Resize(new ResizeOptions
        {
            Size = new Size(width, height),
            Mode = ResizeMode.Stretch,
            Sampler = sampler ?? KnownResamplers.Triangle,
        }));
        return From(small);
    }
}

/// <summary>
/// Entropy-based smart crop, the fast-DreamBooth Colab's idea (via AUTOMATIC1111's autocrop "entropy points"): slide a
/// square window along the long side of the picture and keep the window whose luminance histogram has the highest
/// Shannon entropy, i.e. the most varied, detailed region; flat background scores near zero.
/// </summary>
public static class SmartCrop
{
    /// <summary>Analysis is done on a copy whose long side is at most this many pixels.</summary>
    public const int AnalysisLongSide = 256;

    /// <summary>Histogram bins (luma quantised to 6 bits, so small windows still give stable estimates).</summary>
    public const int Bins = 64;

    /// <summary>The centred square of side min(width, height).</summary>
    public static CropBox Center(int width, int height)
    {
        int side = Math.Min(width, height);
        return new CropBox((width - side) / 2, (height - side) / 2, side);
    }

    /// <summary>The most detailed square of side min(width, height) of <paramref name="image"/> (coordinates in the image).
    /// Windows within 0.5% of the best score count as ties, and the tie nearest the centre wins, so near-uniform
    /// pictures keep the centre crop.</summary>
    public static CropBox Find(Image<Rgb24> image)
    {
        int w = image.Width, h = image.Height;
        if (w == h) return new CropBox(0, 0, w);
        double scale = Math.Min(1.0, AnalysisLongSide / (double)Math.Max(w, h));
        int aw = Math.Max(1, (int)Math.Round(w * scale)), ah = Math.Max(1, (int)Math.Round(h * scale));
        var luma = LumaPlane.FromResized(image, aw, ah);
        var scores = WindowEntropies(luma, out _);
        int slackA = scores.Length - 1;
        int best = PickBest(scores);
        int side0 = Math.Min(w, h), slack = Math.Max(w, h) - side0;
        // A tie centred on the middle (e.g. a uniform picture) keeps the exact centre crop.
        int offset = slackA == 0 || Math.Abs(best - slackA / 2.0) <= 0.5 ? slack / 2 : (int)Math.Round(best / (double)slackA * slack);
        offset = Math.Clamp(offset, 0, slack);
        return w > h ? new CropBox(offset, 0, side0) : new CropBox(0, offset, side0);
    }

    /// <summary>
    /// The square of side min(width, height) that keeps the most of a subject mask (grey-scale, white = subject; the
    /// image's size): the window along the long side with the largest mask sum, and among windows within 0.5 % of it
    /// the one whose centre is nearest the mask's centre of mass, so a subject smaller than the square sits in its
    /// middle. An empty mask gives the centre crop. What the entropy crop guesses, a mask knows: a busy background
    /// beside the subject cannot pull the window off it.
    /// </summary>
    public static CropBox FromMask(Image<L8> mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        int w = mask.Width, h = mask.Height;
        if (w == h) return new CropBox(0, 0, w);
        bool landscape = w > h;
        int side = Math.Min(w, h), longLen = Math.Max(w, h), positions = longLen - side + 1;
        // mask mass per line across the long side (column for landscape, row for portrait)
        var line = new double[longLen];
        mask.ProcessPixelRows(rows =>
        {
            for (int y = 0; y < h; y++)
            {
                var row = rows.GetRowSpan(y);
                for (int x = 0; x < w; x++) line[landscape ? x : y] += row[x].PackedValue / 255.0;
            }
        });
        double total = line.Sum();
        if (total <= 0) return Center(w, h);
        double centroid = 0;
        for (int i = 0; i < longLen; i++) centroid += i * line[i];
        centroid /= total;
        var sums = new double[positions];
        double acc = 0;
        for (int i = 0; i < side; i++) acc += line[i];
        sums[0] = acc;
        for (int p = 1; p < positions; p++) { acc += line[p + side - 1] - line[p - 1]; sums[p] = acc; }
        double max = sums.Max(), tol = Math.Max(1e-9, 0.005 * max);
        int best = -1;
        double Distance(int p) => Math.Abs(p + (side - 1) / 2.0 - centroid);
        for (int p = 0; p < positions; p++)
            if (sums[p] >= max - tol && (best < 0 || Distance(p) < Distance(best))) best = p;
        return landscape ? new CropBox(best, 0, side) : new CropBox(0, best, side);
    }

    /// <summary>Shannon entropy (bits) of the luma histogram of every square window along the long side, one per pixel offset.</summary>
    public static double[] WindowEntropies(LumaPlane luma, out int side)
    {
        int w = luma.Width, h = luma.Height;
        side = Math.Min(w, h);
        bool landscape = w >= h;
        int longLen = landscape ? w : h, positions = longLen - side + 1;
        // Histogram of each line (column for landscape, row for portrait) across the short side.
        var lineHist = new int[longLen, Bins];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int bin = Math.Clamp((int)(luma.Pixels[y * w + x] * Bins / 256f), 0, Bins - 1);
                lineHist[landscape ? x : y, bin]++;
            }
        var hist = new int[Bins];
        for (int i = 0; i < side; i++)
            for (int b = 0; b < Bins; b++) hist[b] += lineHist[i, b];
        var scores = new double[positions];
        double total = (double)side * side;
        for (int p = 0; p < positions; p++)
        {
            if (p > 0)
                for (int b = 0; b < Bins; b++) hist[b] += lineHist[p + side - 1, b] - lineHist[p - 1, b];
            double e = 0;
            for (int b = 0; b < Bins; b++)
                if (hist[b] > 0) { double q = hist[b] / total; e -= q * Math.Log2(q); }
            scores[p] = e;
        }
        return scores;
    }

    static int PickBest(double[] scores)
    {
        double max = scores.Max();
        double tol = Math.Max(1e-9, 0.005 * max);
        double center = (scores.Length - 1) / 2.0;
        int best = -1;
        for (int i = 0; i < scores.Length; i++)
            if (scores[i] >= max - tol && (best < 0 || Math.Abs(i - center) < Math.Abs(best - center))) best = i;
        return best;
    }
}

/// <summary>
/// 64-bit DCT perceptual hash (pHash, as in the Python <c>imagehash.phash</c>): luma resized to 32×32, 2-D DCT-II,
/// the top-left 8×8 low-frequency block, one bit per coefficient above the block's median. Resized or re-encoded copies
/// differ by a few bits; unrelated pictures by ~32.
/// </summary>
public static class PerceptualHash
{
    /// <summary>The hash of <paramref name="image"/>.</summary>
    public static ulong Compute(Image<Rgb24> image)
    {
        const int n = 32;
        var luma = LumaPlane.FromResized(image, n, n, KnownResamplers.Bicubic);
        var tmp = new double[n * n];
        var coeff = new double[n * n];
        var cos = new double[n * n];
        for (int k = 0; k < n; k++)
            for (int i = 0; i < n; i++) cos[k * n + i] = Math.Cos(Math.PI * k * (2 * i + 1) / (2.0 * n));
        // DCT along rows, then along columns (only the first 8 outputs in each direction are needed).
        for (int y = 0; y < n; y++)
            for (int k = 0; k < 8; k++)
            {
                double s = 0;
                for (int x = 0; x < n; x++) s += luma.Pixels[y * n + x] * cos[k * n + x];
                tmp[y * n + k] = s;
            }
        for (int kx = 0; kx < 8; kx++)
            for (int ky = 0; ky < 8; ky++)
            {
                double s = 0;
                for (int y = 0; y < n; y++) s += tmp[y * n + kx] * cos[ky * n + y];
                coeff[ky * 8 + kx] = s;
            }
        var block = coeff.AsSpan(0, 64).ToArray();
        var sorted = (double[])block.Clone();
        Array.Sort(sorted);
        double median = (sorted[31] + sorted[32]) / 2;
        ulong hash = 0;
        for (int i = 0; i < 64; i++)
            if (block[i] > median) hash |= 1UL << i;
        return hash;
    }

    /// <summary>Number of differing bits between two hashes (0–64).</summary>
    public static int Distance(ulong a, ulong b) => BitOperations.PopCount(a ^ b);
}

/// <summary>
/// Blur score: the variance of the 4-neighbour Laplacian (the kernel of OpenCV's <c>cv2.Laplacian(gray, CV_64F)</c>,
/// the "variance of the Laplacian" method of Pech-Pacheco et al. 2000) over a luma plane on the 0–255 scale. Sharp edges
/// give large second derivatives and a large variance; blur removes them.
/// </summary>
public static class BlurDetector
{
    /// <summary>The analysis size used by the importer for a given training resolution: clamp(resolution, 256, 512).</summary>
    public static int AnalysisSide(int resolution) => Math.Clamp(resolution, 256, 512);

    /// <summary>Variance of the Laplacian over the interior pixels of <paramref name="luma"/>.</summary>
    public static double VarianceOfLaplacian(LumaPlane luma)
    {
        int w = luma.Width, h = luma.Height;
        if (w < 3 || h < 3) return 0;
        var p = luma.Pixels;
        double sum = 0, sumSq = 0;
        long count = 0;
        for (int y = 1; y < h - 1; y++)
            for (int x = 1; x < w - 1; x++)
            {
                int i = y * w + x;
                double lap = p[i - 1] + p[i + 1] + p[i - w] + p[i + w] - 4.0 * p[i];
                sum += lap;
                sumSq += lap * lap;
                count++;
            }
        double mean = sum / count;
        return Math.Max(0, sumSq / count - mean * mean);
    }

    /// <summary>The importer's score for a square crop: luma of the crop resized to <see cref="AnalysisSide"/>.</summary>
    public static double Score(Image<Rgb24> squareCrop, int resolution)
    {
        int s = AnalysisSide(resolution);
        return VarianceOfLaplacian(LumaPlane.FromResized(squareCrop, s, s, KnownResamplers.Triangle));
    }
}
