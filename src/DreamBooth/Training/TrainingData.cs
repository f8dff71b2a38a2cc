using DreamBooth.Imaging;
using DreamBooth.Loading;
using DreamBooth.Models.Vae;
using DreamBooth.Text;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Training;

/// <summary>
/// One training image: its cached VAE posterior (mean, std; CPU float32), its caption's token ids and, for an instance
/// image with a mask file when masked training is on, its mask averaged to the latent grid ([1, 1, h, w], CPU float32).
/// </summary>
public sealed record TrainingExample(string Path, string Caption, int Concept, long[] InputIds, Tensor Mean, Tensor Std, Tensor? Mask = null)
{
    internal void DisposeTensors() { Mean.Dispose(); Std.Dispose(); Mask?.Dispose(); }
}

/// <summary>
/// The instance and class examples of a session, encoded once: the VAE is frozen, so each image's posterior is computed a
/// single time and a fresh latent is sampled from it at every step (same distribution as encoding every step).
/// Images must already be at the training resolution (the importer crops them); anything else is an error, never a
/// silent resize.
/// </summary>
public sealed class TrainingData : IDisposable
{
    private TrainingData(IReadOnlyList<TrainingExample> instances, IReadOnlyList<IReadOnlyList<TrainingExample>> classes)
    {
        Instances = instances;
        Classes = classes;
    }

    public IReadOnlyList<TrainingExample> Instances { get; }

    /// <summary>Class examples per concept (empty lists without prior preservation).</summary>
    public IReadOnlyList<IReadOnlyList<TrainingExample>> Classes { get; }

    public static TrainingData Load(DreamBoothSession session, AutoencoderKL vae, ClipTokenizer tokenizer, bool priorPreservation,
        IProgress<string>? progress = null, CancellationToken ct = default)
    {
        var options = session.File.Options;
        var instances = new List<TrainingExample>();
        var classes = new List<IReadOnlyList<TrainingExample>>();
        try
        {
            for (int c = 0; c < session.File.Concepts.Count; c++)
            {
                var concept = session.File.Concepts[c];
                var files = session.InstanceImages(concept);
                if (files.Count == 0)
                    throw new InvalidOperationException($"concept '{concept.Name}' has no instance images in {session.InstanceFolder(concept)}; add some with `dreambooth images add`");
                foreach (var f in files)
                {
                    ct.ThrowIfCancellationRequested();
                    instances.Add(Encode(f, Caption(f, concept.EffectiveInstancePrompt), c, options.Resolution, vae, tokenizer, options.MaskedLoss));
                }
                var list = new List<TrainingExample>();
                if (priorPreservation)
                    foreach (var f in session.ClassImages(concept).Take(options.NumClassImages))
                    {
                        ct.ThrowIfCancellationRequested();
                        list.Add(Encode(f, Caption(f, concept.EffectiveClassPrompt), c, options.Resolution, vae, tokenizer));
                    }
                classes.Add(list);
                int masked = instances.Count(e => e.Concept == c && e.Mask is not null);
                progress?.Report($"{concept.Name}: {files.Count} instance images, {list.Count} class images encoded"
                    + (options.MaskedLoss ? $"; masked loss: {masked} of {files.Count} instance images have a mask ({MaskFiles.Suffix})" + (masked < files.Count ? ", the others train unmasked" : "") : ""));
            }
        }
        catch
        {
            foreach (var e in instances.Concat(classes.SelectMany(x => x))) e.DisposeTensors();
            throw;
        }
        return new TrainingData(instances, classes);
    }

    /// <summary>The caption of an image: its sidecar .txt when present, else the given prompt.</summary>
    public static string Caption(string imagePath, string fallback)
    {
        var txt = System.IO.Path.ChangeExtension(imagePath, ".txt");
        if (File.Exists(txt))
        {
            var text = File.ReadAllText(txt).Trim();
            if (text.Length > 0) return text;
        }
        return fallback;
    }

    static TrainingExample Encode(string path, string caption, int concept, int resolution, AutoencoderKL vae, ClipTokenizer tokenizer, bool withMask = false)
    {
        using (var image = ReadImage<Rgb24>(path, "training image", "remove it or re-import it with `dreambooth images add`"))
        {
            if (image.Width != resolution || image.Height != resolution)
                throw new ModelLoadException(path, $"image is {image.Width}×{image.Height} but the training resolution is {resolution}×{resolution}; import it with `dreambooth images add` (which crops and resizes) or set the session's resolution");
            using var scope = torch.NewDisposeScope();
            using var _ = torch.no_grad();
            var pixels = ImageTensor.ToTensor(image).unsqueeze(0).to(vae.Device);
            var dist = vae.Encode(pixels);
            var mean = dist.Mean.to(ScalarType.Float32).cpu().MoveToOuterDisposeScope();
            var std = dist.Std.to(ScalarType.Float32).cpu().MoveToOuterDisposeScope();
            var ids = tokenizer.EncodeForModel(caption).InputIdsAsLong();
            var maskPath = MaskFiles.PathFor(path);
            var mask = withMask && File.Exists(maskPath)
                ? MaskFiles.ToLatent(MaskFiles.Load(maskPath, resolution, resolution), mean.shape[2], mean.shape[3]).MoveToOuterDisposeScope()
                : null;
            return new TrainingExample(path, caption, concept, ids, mean, std, mask);
        }
    }

    /// <summary>Decodes an image file; an unreadable one is a <see cref="ModelLoadException"/> naming the file, what it is and the fix.</summary>
    internal static Image<TPixel> ReadImage<TPixel>(string path, string what, string fix) where TPixel : unmanaged, IPixel<TPixel>
    {
        try { return Image.Load<TPixel>(path); }
        catch (Exception e) when (e is UnknownImageFormatException or InvalidImageContentException or IOException or NotSupportedException)
        {
            throw new ModelLoadException(path, $"cannot read this {what} ({e.Message}); {fix}", e);
        }
    }

    public void Dispose()
    {
        foreach (var e in Instances.Concat(Classes.SelectMany(x => x))) e.DisposeTensors();
    }
}

/// <summary>
/// Deterministic data order that depends only on (seed, sample counter): epoch e visits the instance images in a
/// permutation drawn from (seed, e). Resuming at a sample counter therefore continues the exact same order.
/// </summary>
public static class DataOrder
{
    public static int InstanceIndex(long seed, long sample, int count)
    {
        long epoch = sample / count;
        int pos = (int)(sample % count);
        return Permutation(seed, epoch, count)[pos];
    }

    /// <summary>The class image paired with an instance sample (uniform, deterministic).</summary>
    public static int ClassIndex(long seed, long sample, int count) => (int)(SplitMix(unchecked(seed * 31 + sample + 0x5bd1e995L)) % (ulong)count);

    public static int[] Permutation(long seed, long epoch, int count)
    {
        var p = Enumerable.Range(0, count).ToArray();
        ulong state = unchecked((ulong)(seed * 1_000_003 + epoch));
        for (int i = count - 1; i > 0; i--)
        {
            state = SplitMix(unchecked((long)state));
            int j = (int)(state % (ulong)(i + 1));
            (p[i], p[j]) = (p[j], p[i]);
        }
        return p;
    }

    static ulong SplitMix(long x)
    {
        ulong z = unchecked((ulong)x + 0x9E3779B97F4A7C15UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
