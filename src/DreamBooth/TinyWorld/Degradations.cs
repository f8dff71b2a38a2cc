using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.TinyWorld;

/// <summary>A planar float RGB image (0..255 per channel) used by the measurements and degradations.</summary>
internal sealed class FloatImage
{
    public FloatImage(int width, int height)
    {
        Width = width; Height = height;
        R = new float[width * height]; G = new float[width * height]; B = new float[width * height];
    }

    public int Width { get; }
    public int Height { get; }
    public float[] R { get; }
    public float[] G { get; }
    public float[] B { get; }

    public static FloatImage From(Image<Rgb24> image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var f = new FloatImage(image.Width, image.Height);
        image.ProcessPixelRows(acc =>
        {
            for (var y = 0; y < acc.Height; y++)
            {
                var row = acc.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    var i = y * f.Width + x;
                    f.R[i] = row[x].R; f.G[i] = row[x].G; f.B[i] = row[x].B;
                }
            }
        });
        return f;
    }

    public Image<Rgb24> ToImage()
    {
        var pixels = new Rgb24[Width * Height];
        for (var i = 0; i < pixels.Length; i++) pixels[i] = new Rgb24(B8(R[i]), B8(G[i]), B8(B[i]));
        return Image.LoadPixelData<Rgb24>(pixels, Width, Height);

        static byte B8(float v) => (byte)Math.Clamp((int)MathF.Round(v), 0, 255);
    }

    /// <summary>Bilinear sample of a channel at continuous pixel coordinates (pixel centres at i + 0.5), clamped at edges.</summary>
    public static float Sample(float[] plane, int width, int height, double x, double y)
    {
        x -= 0.5; y -= 0.5;
        var x0 = (int)Math.Floor(x); var y0 = (int)Math.Floor(y);
        var fx = (float)(x - x0); var fy = (float)(y - y0);
        int xa = Math.Clamp(x0, 0, width - 1), xb = Math.Clamp(x0 + 1, 0, width - 1);
        int ya = Math.Clamp(y0, 0, height - 1), yb = Math.Clamp(y0 + 1, 0, height - 1);
        var top = plane[ya * width + xa] * (1 - fx) + plane[ya * width + xb] * fx;
        var bottom = plane[yb * width + xa] * (1 - fx) + plane[yb * width + xb] * fx;
        return top * (1 - fy) + bottom * fy;
    }
}

/// <summary>
/// Image degradations that mimic what a tiny generator produces (blur, noise, the loss of detail of a VAE with a
/// small latent grid), used to validate that the measurements still work on imperfect images.
/// </summary>
public static class TinyWorldDegradations
{
    /// <summary>Separable Gaussian blur with standard deviation <paramref name="sigma"/> pixels (edges clamped).</summary>
    public static Image<Rgb24> GaussianBlur(Image<Rgb24> image, double sigma)
    {
        if (!(sigma > 0 && sigma <= 20)) throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "sigma must lie in (0, 20] pixels.");
        var src = FloatImage.From(image);
        var radius = (int)Math.Ceiling(3 * sigma);
        var k = new float[2 * radius + 1];
        double sum = 0;
        for (var i = -radius; i <= radius; i++) sum += k[i + radius] = (float)Math.Exp(-i * i / (2 * sigma * sigma));
        for (var i = 0; i < k.Length; i++) k[i] = (float)(k[i] / sum);
        var tmp = new FloatImage(src.Width, src.Height);
        var dst = new FloatImage(src.Width, src.Height);
        foreach (var (s, t, d) in new[] { (src.R, tmp.R, dst.R), (src.G, tmp.G, dst.G), (src.B, tmp.B, dst.B) })
        {
            int w = src.Width, h = src.Height;
            for (var y = 0; y < h; y++)
                for (var x = 0; x < w; x++)
                {
                    float acc = 0;
                    for (var j = -radius; j <= radius; j++) acc += k[j + radius] * s[y * w + Math.Clamp(x + j, 0, w - 1)];
                    t[y * w + x] = acc;
                }
            for (var y = 0; y < h; y++)
                for (var x = 0; x < w; x++)
                {
                    float acc = 0;
                    for (var j = -radius; j <= radius; j++) acc += k[j + radius] * t[Math.Clamp(y + j, 0, h - 1) * w + x];
                    d[y * w + x] = acc;
                }
        }
        return dst.ToImage();
    }

    /// <summary>Adds i.i.d. Gaussian noise of standard deviation <paramref name="sigma"/> (in 0..255 units), seeded.</summary>
    public static Image<Rgb24> AddNoise(Image<Rgb24> image, double sigma, int seed)
    {
        if (!(sigma >= 0 && sigma <= 128)) throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "sigma must lie in [0, 128].");
        var f = FloatImage.From(image);
        var rng = new SplitMix64((ulong)(uint)seed ^ 0x6E6F697365UL);
        foreach (var plane in new[] { f.R, f.G, f.B })
            for (var i = 0; i < plane.Length; i++) plane[i] += (float)(sigma * rng.NextGaussian());
        return f.ToImage();
    }

    /// <summary>
    /// Box-downscales by an integer <paramref name="factor"/> and upsamples back bilinearly: the detail a VAE with a
    /// latent grid <paramref name="factor"/> times smaller loses. The size must be divisible by the factor.
    /// </summary>
    public static Image<Rgb24> DownUp(Image<Rgb24> image, int factor)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (factor < 1 || image.Width % factor != 0 || image.Height % factor != 0)
            throw new ArgumentOutOfRangeException(nameof(factor), factor, $"factor must be ≥ 1 and divide the image size {image.Width}x{image.Height}.");
        var src = FloatImage.From(image);
        int sw = image.Width / factor, sh = image.Height / factor;
        var small = new FloatImage(sw, sh);
        var dst = new FloatImage(image.Width, image.Height);
        foreach (var (s, m, d) in new[] { (src.R, small.R, dst.R), (src.G, small.G, dst.G), (src.B, small.B, dst.B) })
        {
            for (var y = 0; y < sh; y++)
                for (var x = 0; x < sw; x++)
                {
                    float acc = 0;
                    for (var j = 0; j < factor; j++)
                        for (var i = 0; i < factor; i++) acc += s[(y * factor + j) * src.Width + x * factor + i];
                    m[y * sw + x] = acc / (factor * factor);
                }
            for (var y = 0; y < dst.Height; y++)
                for (var x = 0; x < dst.Width; x++)
                    d[y * dst.Width + x] = FloatImage.Sample(m, sw, sh, (x + 0.5) / factor, (y + 0.5) / factor);
        }
        return dst.ToImage();
    }
}
