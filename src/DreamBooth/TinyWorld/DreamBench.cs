using DreamBooth.Loading;
using DreamBooth.Pipelines;
using DreamBooth.Sampling;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace DreamBooth.TinyWorld;

/// <summary>Settings of the mini DreamBench.</summary>
public sealed record DreamBenchOptions
{
    /// <summary>Seeds per prompt (every prompt is generated once per seed).</summary>
    public IReadOnlyList<long> Seeds { get; init; } = [11, 22, 33];
    public int Steps { get; init; } = 20;
    public Sampler Sampler { get; init; } = Sampler.DpmPP2M;
    public double GuidanceScale { get; init; } = 5.0;

    /// <summary>A class-prompt image "is the subject" when its subject-fidelity score reaches this.</summary>
    public double LeakageThreshold { get; init; } = 0.5;

    public void Validate()
    {
        if (Seeds.Count == 0) throw new ArgumentException("DreamBenchOptions.Seeds: give at least one seed", nameof(Seeds));
        if (Steps < 1) throw new ArgumentException($"DreamBenchOptions.Steps: must be ≥ 1 (got {Steps})", nameof(Steps));
        if (LeakageThreshold is <= 0 or > 1) throw new ArgumentException("DreamBenchOptions.LeakageThreshold: must be in (0, 1]", nameof(LeakageThreshold));
    }
}

/// <summary>
/// Scores of one model on the mini DreamBench.
/// <list type="bullet">
/// <item><see cref="SubjectFidelity"/>: mean <see cref="TinyWorld.SubjectFidelity"/> score of images for identifier prompts
/// (how much the object looks like the subject: outline, two-tone checker pattern, colours), the analogue of DreamBench's
/// DINO score.</item>
/// <item><see cref="PromptFidelity"/>: fraction of identifier-prompt images whose requested background and position are
/// obeyed (pixel analysis), the analogue of CLIP-T.</item>
/// <item><see cref="Leakage"/>: fraction of class-prompt images (the same prompts without the identifier) that draw the
/// subject anyway — language drift, which prior preservation is meant to prevent.</item>
/// </list>
/// </summary>
public sealed record DreamBenchScores(string Model, double SubjectFidelity, double PromptFidelity, double Leakage, int SubjectImages, int ClassImages)
{
    public override string ToString() =>
        $"{Model,-28} subject fidelity {SubjectFidelity:F3}  prompt fidelity {PromptFidelity:P1}  leakage {Leakage:P1}  ({SubjectImages} + {ClassImages} images)";
}

/// <summary>The mini DreamBench over <see cref="DemoSubject.RecontextualisationPrompts"/> (backgrounds and positions never in the instance images).</summary>
public static class DreamBench
{
    /// <summary>The identifier prompt with the identifier removed ("a zwx diamond …" → "a diamond …").</summary>
    public static string ClassVersion(string prompt) => prompt.Replace(DemoSubject.Identifier + " ", "", StringComparison.Ordinal);

    public static DreamBenchScores Evaluate(StableDiffusionModel model, string name, DreamBenchOptions? options = null,
        IReadOnlyList<string>? prompts = null, IProgress<string>? progress = null, CancellationToken ct = default)
    {
        options ??= new DreamBenchOptions();
        options.Validate();
        prompts ??= DemoSubject.RecontextualisationPrompts;
        var pipe = new StableDiffusionPipeline(model);
        double fidelitySum = 0;
        int obeyed = 0, subjectImages = 0, leaked = 0, classImages = 0;
        foreach (var prompt in prompts)
        {
            foreach (var (img, _) in Generate(pipe, prompt, options, ct))
                using (img)
                {
                    var request = SceneRequest.Parse(prompt, DemoSubject.Identifier);
                    var check = PromptFidelity.Check(img, request);
                    fidelitySum += TinyWorld.SubjectFidelity.Score(img).Score;
                    if (check.ObjectPresent && check.Background != false && check.Position != false) obeyed++;
                    subjectImages++;
                }
            foreach (var (img, _) in Generate(pipe, ClassVersion(prompt), options, ct))
                using (img)
                {
                    if (TinyWorld.SubjectFidelity.Score(img).Score >= options.LeakageThreshold) leaked++;
                    classImages++;
                }
            progress?.Report($"{name}: {subjectImages} subject + {classImages} class images scored");
        }
        return new DreamBenchScores(name, fidelitySum / subjectImages, obeyed / (double)subjectImages, leaked / (double)classImages, subjectImages, classImages);
    }

    /// <summary>
    /// The comparison the DreamBooth paper makes: the base model, DreamBooth without prior preservation, and DreamBooth
    /// with it (each trained from the base model with <paramref name="training"/>'s settings in a session under
    /// <paramref name="workFolder"/>).
    /// </summary>
    public static IReadOnlyList<DreamBenchScores> Compare(QuickstartOptions training, string workFolder, DreamBenchOptions? options = null,
        IReadOnlyList<string>? prompts = null, IProgress<string>? progress = null, CancellationToken ct = default)
    {
        var results = new List<DreamBenchScores>();
        using (var baseModel = ModelSource.Load(training.Model))
            results.Add(Evaluate(baseModel, "base model", options, prompts, progress, ct));
        foreach (var prior in new[] { false, true })
        {
            var folder = Path.Combine(workFolder, prior ? "with-prior" : "no-prior");
            if (Directory.Exists(folder)) Directory.Delete(folder, true);
            using var model = ModelSource.Load(training.Model);
            Quickstart.Train(training with { PriorPreservation = prior }, model, folder, progress, null, ct);
            results.Add(Evaluate(model, prior ? "DreamBooth + prior preservation" : "DreamBooth, no prior preservation", options, prompts, progress, ct));
        }
        return results;
    }

    static IEnumerable<(Image<Rgb24> Image, long Seed)> Generate(StableDiffusionPipeline pipe, string prompt, DreamBenchOptions o, CancellationToken ct)
    {
        using var r = pipe.Generate(new GenerationRequest
        {
            Prompt = prompt,
            Seeds = o.Seeds,
            Steps = o.Steps,
            Sampler = o.Sampler,
            GuidanceScale = o.GuidanceScale,
        }, cancellationToken: ct);
        var images = r.ToImages();
        for (int i = 0; i < images.Count; i++) yield return (images[i], r.Seeds[i]);
    }
}
