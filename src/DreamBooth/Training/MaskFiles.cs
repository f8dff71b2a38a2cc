using DreamBooth.Loading;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Training;

/// <summary>
/// Subject masks for masked training (<see cref="TrainingOptions.MaskedLoss"/>): a grey-scale PNG beside an image, named
/// <c>&lt;image name&gt;-masklabel.png</c> (OneTrainer's convention), of the image's size; white (255) marks the subject,
/// black (0) the rest, grey a partial weight. Mask files are never training images themselves.
/// </summary>
public static class MaskFiles
{
    /// <summary>The suffix that marks a mask file.</summary>
    public const string Suffix = "-masklabel.png";

    /// <summary>The mask file of an image (whether or not it exists).</summary>
    public static string PathFor(string imagePath) =>
        Path.Combine(Path.GetDirectoryName(imagePath) ?? "", Path.GetFileNameWithoutExtension(imagePath) + Suffix);

    /// <summary>True for a mask file's name.</summary>
    public static bool IsMask(string path) => Path.GetFileName(path).EndsWith(Suffix, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Reads a mask as a [1, 1, height, width] float32 tensor in [0, 1] (luminance / 255). It must have the image's size:
    /// a mask cropped or resized differently from its image would weight the wrong pixels.
    /// </summary>
    public static Tensor Load(string maskPath, int width, int height)
    {
        using (var mask = TrainingData.ReadImage<L8>(maskPath, "mask", "fix or delete it (a mask is a grey-scale PNG: white = the subject, black = the rest)"))
        {
            if (mask.Width != width || mask.Height != height)
                throw new ModelLoadException(maskPath, $"mask is {mask.Width}×{mask.Height} but its image is {width}×{height}; a mask must be cropped and resized exactly as its image (import both with `dreambooth images add`, which does so)");
            var values = new float[width * height];
            mask.ProcessPixelRows(rows =>
            {
                for (int y = 0; y < height; y++)
                {
                    var row = rows.GetRowSpan(y);
                    for (int x = 0; x < width; x++) values[y * width + x] = row[x].PackedValue / 255f;
                }
            });
            return torch.tensor(values, [1, 1, height, width]);
        }
    }

    /// <summary>
    /// A pixel mask averaged down to the latent grid ([1, 1, h, w]): each latent pixel gets the mean of the image pixels
    /// it encodes, so a subject's edge gets a partial weight.
    /// </summary>
    public static Tensor ToLatent(Tensor pixelMask, long latentHeight, long latentWidth) =>
        nn.functional.adaptive_avg_pool2d(pixelMask, [latentHeight, latentWidth]);

    /// <summary>The per-pixel loss weights of a latent mask: <paramref name="unmaskedWeight"/> + (1 − it) · mask.</summary>
    public static Tensor Weights(Tensor latentMask, double unmaskedWeight)
    {
        using var scaled = latentMask.Times(1 - unmaskedWeight);
        return scaled.Shift(unmaskedWeight);
    }
}
