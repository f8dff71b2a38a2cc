using DreamBooth.Models.Vae;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.TinyWorld;

/// <summary>
/// The palette's colours as a VAE codes them — shared by <see cref="DreamBench.LatentContrast"/> (measurement) and the
/// pretraining's colour-separation term (<see cref="Pretraining.PretrainOptions.VaeColourSeparation"/>).
/// </summary>
internal static class PaletteLatents
{
    /// <summary>Plain images of every palette colour (in <see cref="TinyWorldPalette.All"/> order), [-1, 1], size × size.</summary>
    public static Tensor PlainImages(int size) =>
        stack(TinyWorldPalette.All.Select(c =>
        {
            var (r, g, b) = TinyWorldPalette.ToRgb(c);
            return tensor(new[] { r / 127.5f - 1, g / 127.5f - 1, b / 127.5f - 1 }).view(3, 1, 1).expand(3, size, size);
        }).ToList());

    /// <summary>Each plain image's mean latent over the central half of the latent grid (away from the convolutions' zero padding): [colours, channels].</summary>
    public static Tensor Codes(AutoencoderKL vae, Tensor plainImages)
    {
        var z = vae.Encode(plainImages).Mean;
        long h = z.shape[2], w = z.shape[3];
        return z[.., .., (int)(h / 4)..(int)(h - h / 4), (int)(w / 4)..(int)(w - w / 4)].mean([2, 3]);
    }

    /// <summary>Euclidean distances between every pair of rows of <paramref name="codes"/> (differentiable: ε inside the root).</summary>
    public static Tensor Distances(Tensor codes) => (codes.unsqueeze(1) - codes.unsqueeze(0)).pow(2).sum(2).add(1e-12).sqrt();
}
