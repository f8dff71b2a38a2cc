using DreamBooth.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Pipelines;

/// <summary>Progress of a generation: step i of n, with an optional latent preview.</summary>
public sealed record GenerationProgress(int Step, int TotalSteps, double Timestep, Image<Rgb24>? Preview);

/// <summary>Generated images ([B, 3, H, W] in [-1, 1] on the CPU) with their seeds and AUTOMATIC1111-style parameters.</summary>
public sealed class GenerationResult : IDisposable
{
    public GenerationResult(Tensor images, IReadOnlyList<long> seeds, IReadOnlyList<GenerationParameters> parameters)
    {
        Images = images;
        Seeds = seeds;
        Parameters = parameters;
    }

    public Tensor Images { get; }

    public IReadOnlyList<long> Seeds { get; }

    public IReadOnlyList<GenerationParameters> Parameters { get; }

    public int Count => (int)Images.shape[0];

    /// <summary>The images as 8-bit RGB (rounded as diffusers' numpy_to_pil).</summary>
    public List<Image<Rgb24>> ToImages() => ImageTensor.ToImages(Images);

    public void Dispose() => Images.Dispose();
}
