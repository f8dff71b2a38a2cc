using DreamBooth.Imaging;
using DreamBooth.Loading;
using DreamBooth.Pipelines;
using DreamBooth.Sampling;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.TinyWorld.Pretraining;

/// <summary>Options of <see cref="TinyModelEvaluation"/>.</summary>
public sealed record TinyModelEvalOptions
{
    /// <summary>Number of held-out captions (one image each).</summary>
    public int Samples { get; init; } = 100;

    /// <summary>Seed of the held-out captions and of the images (image i uses Seed + i).</summary>
    public int Seed { get; init; } = 777;

    /// <summary>Denoising steps.</summary>
    public int Steps { get; init; } = 20;

    /// <summary>Classifier-free guidance scale.</summary>
    public double GuidanceScale { get; init; } = 5.0;

    /// <summary>Sampler.</summary>
    public Sampler Sampler { get; init; } = Sampler.DpmPP2M;

    /// <summary>Which split the captions come from (HeldOut: shape/background combinations never trained on).</summary>
    public TinyWorldSplit Split { get; init; } = TinyWorldSplit.HeldOut;

    /// <summary>Throws with the offending option's name and the fix.</summary>
    public void Validate()
    {
        if (Samples is < 1 or > 100_000) throw new ArgumentOutOfRangeException(nameof(Samples), Samples, "TinyModelEvalOptions.Samples must be in [1, 100000] (100–200 is a good trade-off).");
        if (Seed < 0) throw new ArgumentOutOfRangeException(nameof(Seed), Seed, "TinyModelEvalOptions.Seed must be ≥ 0.");
        if (Steps is < 1 or > 1000) throw new ArgumentOutOfRangeException(nameof(Steps), Steps, "TinyModelEvalOptions.Steps must be in [1, 1000].");
        if (GuidanceScale is < 0 or > 100 || double.IsNaN(GuidanceScale)) throw new ArgumentOutOfRangeException(nameof(GuidanceScale), GuidanceScale, "TinyModelEvalOptions.GuidanceScale must be in [0, 100].");
    }
}

/// <summary>One evaluated image: the caption asked for, the image generated and what the measurements found.</summary>
public sealed record TinyModelEvalItem(string Caption, Image<Rgb24> Image, PromptFidelity Fidelity);

/// <summary>The accuracies and the evaluated images.</summary>
public sealed record TinyModelEvalResult(TinyWorldEvaluation Evaluation, IReadOnlyList<TinyModelEvalItem> Items) : IDisposable
{
    /// <summary>A grid of the first <paramref name="count"/> images (columns of <paramref name="columns"/>).</summary>
    public Image<Rgb24> Grid(int count = 40, int columns = 8)
    {
        var items = Items.Take(count).ToList();
        var rows = new List<IReadOnlyList<Image<Rgb24>?>>();
        for (int i = 0; i < items.Count; i += columns)
        {
            var row = items.Skip(i).Take(columns).Select(x => (Image<Rgb24>?)x.Image).ToList();
            while (rows.Count > 0 && row.Count < columns) row.Add(null);
            rows.Add(row);
        }
        return GridCompositor.Compose(rows, title: "tiny-sd, held-out captions");
    }

    public void Dispose()
    {
        foreach (var i in Items) i.Image.Dispose();
    }
}

/// <summary>VAE round trip of rendered scenes: pairs, PSNR (dB) and how many keep background, shape and colour.</summary>
public sealed record VaeRoundTripResult(IReadOnlyList<(Image<Rgb24> Original, Image<Rgb24> Reconstruction)> Pairs, double Psnr, int AttributesKept) : IDisposable
{
    /// <summary>Reconstructions whose measured shape equals the original's, among the scenes with small objects.</summary>
    public int SmallShapesKept { get; init; }

    /// <summary>Scenes with small objects.</summary>
    public int SmallScenes { get; init; }

    /// <summary>Reconstructions whose measured shape equals the original's, among the scenes with large objects.</summary>
    public int LargeShapesKept { get; init; }

    /// <summary>Scenes with large objects.</summary>
    public int LargeScenes { get; init; }

    /// <summary>Two rows: originals above, reconstructions below.</summary>
    public Image<Rgb24> Grid() => GridCompositor.Compose(
        [Pairs.Select(p => (Image<Rgb24>?)p.Original).ToList(), Pairs.Select(p => (Image<Rgb24>?)p.Reconstruction).ToList()],
        rowLabels: ["original", "VAE"]);

    public void Dispose()
    {
        foreach (var (a, b) in Pairs) { a.Dispose(); b.Dispose(); }
    }
}

/// <summary>
/// Measures how well a text-to-image model obeys tiny-world captions: generates one image per caption of the
/// TinyWorldDataset held-out split (shape/background combinations never seen in training) with
/// <see cref="StableDiffusionPipeline"/> and checks background, shape, colour, size, position and count with
/// <see cref="TinyWorldEvaluation"/>.
/// </summary>
public static class TinyModelEvaluation
{
    /// <summary>Generates and measures; progress reports (done, total).</summary>
    public static TinyModelEvalResult Run(StableDiffusionModel model, TinyModelEvalOptions options,
        IProgress<(int Done, int Total)>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var data = new TinyWorldDataset(new TinyWorldDatasetOptions { Seed = options.Seed, Count = options.Samples, Split = options.Split });
        var pipeline = new StableDiffusionPipeline(model);
        var items = new List<TinyModelEvalItem>();
        var requests = new List<SceneRequest>();
        try
        {
            foreach (var sample in data)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var request = new GenerationRequest
                {
                    Prompt = sample.Caption,
                    Steps = options.Steps,
                    GuidanceScale = options.GuidanceScale,
                    Sampler = options.Sampler,
                    Seed = options.Seed + sample.Index,
                };
                using var result = pipeline.Generate(request, cancellationToken: cancellationToken);
                var image = ImageTensor.ToImages(result.Images)[0];
                var wanted = SceneRequest.From(sample.Scene);
                requests.Add(wanted);
                items.Add(new TinyModelEvalItem(sample.Caption, image, PromptFidelity.Check(image, wanted)));
                progress?.Report((items.Count, data.Count));
            }
            var evaluation = TinyWorldEvaluation.Evaluate(items.Select((item, k) => (item.Image, requests[k])), cancellationToken);
            return new TinyModelEvalResult(evaluation, items);
        }
        catch
        {
            foreach (var i in items) i.Image.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Encodes and decodes <paramref name="count"/> rendered held-out scenes with the model's VAE: returns the pairs
    /// (original, reconstruction), the PSNR in dB over all pixels (0–255 scale) and how many reconstructions keep the
    /// background, shape and colour that the measurements find in the originals.
    /// </summary>
    public static VaeRoundTripResult VaeRoundTrip(StableDiffusionModel model, int count = 16, int seed = 777)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (count < 1) throw new ArgumentOutOfRangeException(nameof(count), count, "count must be ≥ 1.");
        var data = new TinyWorldDataset(new TinyWorldDatasetOptions { Seed = seed, Count = count, Split = TinyWorldSplit.HeldOut });
        var pairs = new List<(Image<Rgb24>, Image<Rgb24>)>();
        double se = 0; long n = 0; int kept = 0, smallKept = 0, small = 0, largeKept = 0, large = 0;
        using var noGrad = TorchSharp.torch.no_grad();
        foreach (var sample in data)
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            var original = sample.Render();
            var x = ImageTensor.ToTensor(original).unsqueeze(0);
            var z = model.Vae.Encode(x.to(model.Vae.DType)).Mean;
            var y = model.Vae.Decode(z).to(TorchSharp.torch.ScalarType.Float32).clamp(-1, 1);
            var recon = ImageTensor.ToImages(y)[0];
            for (int r = 0; r < original.Height; r++)
                for (int c = 0; c < original.Width; c++)
                {
                    var a = original[c, r]; var b = recon[c, r];
                    se += Sq(a.R - b.R) + Sq(a.G - b.G) + Sq(a.B - b.B);
                    n += 3;
                }
            var mo = TinyWorldMeasurements.Measure(original);
            var mr = TinyWorldMeasurements.Measure(recon);
            if (mo.Background == mr.Background && mo.Shape == mr.Shape && mo.Color == mr.Color) kept++;
            bool shapeKept = mo.Shape == mr.Shape;
            if (sample.Scene.Size == ObjectSize.Small) { small++; if (shapeKept) smallKept++; }
            else { large++; if (shapeKept) largeKept++; }
            pairs.Add((original, recon));
        }
        double mse = se / n;
        return new VaeRoundTripResult(pairs, mse == 0 ? double.PositiveInfinity : 10 * Math.Log10(255.0 * 255.0 / mse), kept)
        {
            SmallShapesKept = smallKept, SmallScenes = small, LargeShapesKept = largeKept, LargeScenes = large,
        };
    }

    static double Sq(int v) => (double)v * v;

    /// <summary>Generates <paramref name="count"/> images for one prompt (e.g. the class prompt "a diamond") and measures each.</summary>
    public static IReadOnlyList<TinyModelEvalItem> Prompt(StableDiffusionModel model, string prompt, int count, int seed,
        TinyModelEvalOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new TinyModelEvalOptions();
        var pipeline = new StableDiffusionPipeline(model);
        var request = SceneRequest.Parse(prompt);
        var items = new List<TinyModelEvalItem>();
        for (int i = 0; i < count; i++)
        {
            using var result = pipeline.Generate(new GenerationRequest
            {
                Prompt = prompt, Steps = options.Steps, GuidanceScale = options.GuidanceScale, Sampler = options.Sampler, Seed = seed + i,
            }, cancellationToken: cancellationToken);
            var image = ImageTensor.ToImages(result.Images)[0];
            items.Add(new TinyModelEvalItem(prompt, image, PromptFidelity.Check(image, request)));
        }
        return items;
    }
}
