using DreamBooth.Imaging;
using DreamBooth.Loading;
using DreamBooth.Pipelines;
using DreamBooth.Sampling;

namespace DreamBooth.Training;

/// <summary>Progress of class-image generation.</summary>
public sealed record ClassImageProgress(string Concept, int Done, int Total, string? Written);

/// <summary>
/// Prior preservation's class images: generated once with the base model from the class prompt and cached in the
/// session (<c>class_images/&lt;concept&gt;/class_0001.png</c>, with their generation parameters). Only missing ones are
/// generated; existing images are never touched, so a resumed or retrained session reuses them.
/// </summary>
public static class ClassImages
{
    public static string FileName(int index) => $"class_{index + 1:D4}.png";

    /// <summary>
    /// The prompts class image 0, 1, 2, … are generated from, in turn: the class prompt alone, or with
    /// <see cref="TrainingOptions.ClassPromptsFromCaptions"/> the concept's instance captions (sidecar .txt, in file
    /// order) with the identifier removed (<see cref="WithoutIdentifier"/>).
    /// </summary>
    public static IReadOnlyList<string> Prompts(DreamBoothSession session, Concept concept)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(concept);
        if (!session.File.Options.ClassPromptsFromCaptions) return [concept.EffectiveClassPrompt];
        var prompts = session.InstanceImages(concept)
            .Select(f => WithoutIdentifier(TrainingData.Caption(f, concept.EffectiveInstancePrompt), concept.Identifier))
            .Where(p => p.Length > 0).ToList();
        return prompts.Count > 0 ? prompts : [concept.EffectiveClassPrompt];
    }

    /// <summary>A caption with every whole-word occurrence of the identifier removed ("a zwx diamond on red" → "a diamond on red").</summary>
    public static string WithoutIdentifier(string caption, string identifier)
    {
        ArgumentNullException.ThrowIfNull(caption);
        ArgumentException.ThrowIfNullOrWhiteSpace(identifier);
        var words = caption.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        return string.Join(' ', words.Where(w => !string.Equals(w.TrimEnd(',', '.', ';', ':'), identifier, StringComparison.Ordinal)));
    }

    /// <summary>How many class images each concept still lacks.</summary>
    public static IReadOnlyDictionary<string, int> Missing(DreamBoothSession session) =>
        session.File.Concepts.ToDictionary(c => c.Name,
            c => Enumerable.Range(0, session.File.Options.NumClassImages).Count(i => !File.Exists(Path.Combine(session.ClassFolder(c), FileName(i)))));

    /// <summary>
    /// Generates the missing class images of every concept (deterministic seeds: options.Seed + 100000 + index).
    /// <paramref name="imageWorkers"/>: the pipeline's <see cref="StableDiffusionPipeline.ImageWorkers"/> (the images are the same whatever the number).
    /// </summary>
    public static int EnsureGenerated(DreamBoothSession session, StableDiffusionModel model, Sampler sampler = Sampler.DpmPP2M,
        double guidance = 7.5, IProgress<ClassImageProgress>? progress = null, CancellationToken ct = default, int imageWorkers = 1)
    {
        var options = session.File.Options;
        var pipeline = new StableDiffusionPipeline(model) { ImageWorkers = imageWorkers };
        int written = 0;
        foreach (var concept in session.File.Concepts)
        {
            var folder = session.ClassFolder(concept);
            Directory.CreateDirectory(folder);
            var prompts = Prompts(session, concept);
            var todo = Enumerable.Range(0, options.NumClassImages).Where(i => !File.Exists(Path.Combine(folder, FileName(i)))).ToList();
            int done = options.NumClassImages - todo.Count;
            // images that share a prompt are generated together, ClassImageBatchSize per call, each from its own seed
            var batches = todo.GroupBy(i => i % prompts.Count).SelectMany(g => g.Chunk(options.ClassImageBatchSize)).OrderBy(b => b[0]).ToList();
            foreach (var batch in batches)
            {
                ct.ThrowIfCancellationRequested();
                var prompt = prompts[batch[0] % prompts.Count];
                using var result = pipeline.Generate(new GenerationRequest
                {
                    Prompt = prompt,
                    Width = options.Resolution,
                    Height = options.Resolution,
                    Steps = options.ClassImageSteps,
                    GuidanceScale = guidance,
                    Sampler = sampler,
                    Seeds = batch.Select(i => options.Seed + 100_000 + i).ToArray(),
                }, cancellationToken: ct);
                var images = result.ToImages();
                try
                {
                    for (int k = 0; k < batch.Length; k++)
                    {
                        var path = Path.Combine(folder, FileName(batch[k]));
                        // the caption first: an image without its caption would train on the plain class prompt
                        if (options.ClassPromptsFromCaptions) AtomicFile.WriteAllText(Path.ChangeExtension(path, ".txt"), prompt + "\n");
                        PngInfo.Save(images[k], path, result.Parameters[k]);
                        written++;
                        progress?.Report(new ClassImageProgress(concept.Name, ++done, options.NumClassImages, path));
                    }
                }
                finally
                {
                    foreach (var img in images) img.Dispose();
                }
            }
        }
        return written;
    }
}
