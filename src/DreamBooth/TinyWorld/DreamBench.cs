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
/// <see cref="Outline"/>, <see cref="Pattern"/> and <see cref="Color"/> are the means of subject fidelity's three terms
/// over the same images (each in [0, 1]): which cue a model misses.
/// </summary>
public sealed record DreamBenchScores(string Model, double SubjectFidelity, double PromptFidelity, double Leakage, int SubjectImages, int ClassImages)
{
    public double Outline { get; init; }
    public double Pattern { get; init; }
    public double Color { get; init; }

    /// <summary>Subject fidelity of each training seed when these scores average several (<see cref="Average"/>); else empty.</summary>
    public IReadOnlyList<double> PerSeedFidelity { get; init; } = [];

    /// <summary>The mean of several runs of one model (e.g. DreamBooth with different training seeds); image counts add up.</summary>
    public static DreamBenchScores Average(string model, IReadOnlyList<DreamBenchScores> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        if (runs.Count == 0) throw new ArgumentException("give at least one run to average", nameof(runs));
        return new DreamBenchScores(model, runs.Average(r => r.SubjectFidelity), runs.Average(r => r.PromptFidelity), runs.Average(r => r.Leakage),
            runs.Sum(r => r.SubjectImages), runs.Sum(r => r.ClassImages))
        {
            Outline = runs.Average(r => r.Outline), Pattern = runs.Average(r => r.Pattern), Color = runs.Average(r => r.Color),
            PerSeedFidelity = runs.Select(r => r.SubjectFidelity).ToArray(),
        };
    }

    public override string ToString() =>
        $"{Model,-33} subject fidelity {SubjectFidelity:F3} (outline {Outline:F2}, pattern {Pattern:F2}, colour {Color:F2})  prompt fidelity {PromptFidelity:P1}  leakage {Leakage:P1}  ({SubjectImages} + {ClassImages} images)"
        + (PerSeedFidelity.Count > 1 ? $"; mean of {PerSeedFidelity.Count} training seeds, subject fidelity per seed {string.Join(" / ", PerSeedFidelity.Select(f => f.ToString("F3", System.Globalization.CultureInfo.InvariantCulture)))}" : "");
}

/// <summary>
/// What subject fidelity the model's VAE allows (<see cref="DreamBench.VaeCeiling"/>): the real subject rendered where
/// each prompt asks, encoded and decoded, then scored like a generated image: what the decoder makes of the subject's
/// own latents, so roughly the best a generated image can reach (a UNet could in principle find latents that decode
/// better than the encoder's, but it is trained to imitate the encoder's) — the ceiling against which
/// <see cref="DreamBenchScores.SubjectFidelity"/> reads.
/// </summary>
public sealed record DreamBenchCeiling(double SubjectFidelity, double Outline, double Pattern, double Color, int Images, double Lowest, string LowestPrompt)
{
    public override string ToString() =>
        $"{"VAE round trip of the subject",-33} subject fidelity {SubjectFidelity:F3} (outline {Outline:F2}, pattern {Pattern:F2}, colour {Color:F2})  ({Images} images; lowest {Lowest:F2}: {LowestPrompt})";
}

/// <summary>
/// How far apart the model's VAE puts the palette's colours in latent space (<see cref="DreamBench.LatentContrast"/>):
/// <see cref="Distance"/> is the Euclidean distance between the mean latents of two plain images, in the UNet's units
/// (latents × <c>scaling_factor</c>, where the training noise has standard deviation 1). A subject colour close to a
/// background colour is a small change of the latent that the UNet can get wrong without much loss — measured on the
/// committed model, the subject's purple lies 1.5 from white and 1.3 from the photos' blue but 2.9–3.2 from black and red,
/// its yellow 1.3 from orange and 1.9 from white; the subject fares worst on white and orange.
/// </summary>
public sealed record DreamBenchLatentContrast(IReadOnlyList<NamedColor> Colors, double[,] Distances)
{
    /// <summary>The latent distance between two palette colours.</summary>
    public double Distance(NamedColor a, NamedColor b) => Distances[Index(a), Index(b)];

    /// <summary>The smaller latent distance of the subject's two colours to a background.</summary>
    public double SubjectContrast(NamedColor background) =>
        Math.Min(Distance(DemoSubject.PrimaryColor, background), Distance(DemoSubject.SecondaryColor, background));

    int Index(NamedColor c)
    {
        for (var i = 0; i < Colors.Count; i++) if (Colors[i] == c) return i;
        throw new ArgumentException($"{c} was not measured (measured: {string.Join(", ", Colors)})", nameof(c));
    }

    /// <summary>One line: per background (the instance photos' and the benchmark's), the distance of the subject's two colours.</summary>
    public override string ToString()
    {
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        var primary = TinyWorldVocabulary.Word(DemoSubject.PrimaryColor);
        var secondary = TinyWorldVocabulary.Word(DemoSubject.SecondaryColor);
        var backgrounds = DemoSubject.InstanceBackgrounds.Concat(DreamBench.Backgrounds()).Distinct();
        return $"{"latent contrast of the subject",-33} {primary} / {secondary} to each background (× scaling factor): "
            + string.Join(", ", backgrounds.Select(b => string.Create(inv, $"{TinyWorldVocabulary.Word(b)}{(DemoSubject.InstanceBackgrounds.Contains(b) ? " (photos)" : "")} {Distance(DemoSubject.PrimaryColor, b):F2} / {Distance(DemoSubject.SecondaryColor, b):F2}")));
    }
}

/// <summary>The mini DreamBench over <see cref="DemoSubject.RecontextualisationPrompts"/> (backgrounds and positions never in the instance images).</summary>
public static class DreamBench
{
    /// <summary>The identifier prompt with the identifier removed ("a zwx diamond …" → "a diamond …").</summary>
    public static string ClassVersion(string prompt) => Training.ClassImages.WithoutIdentifier(prompt, DemoSubject.Identifier);

    /// <summary>
    /// Scores <paramref name="model"/> on <paramref name="prompts"/>; <paramref name="imageWorkers"/>: images of a prompt
    /// generated at once on the CPU (<see cref="StableDiffusionPipeline.ImageWorkers"/>; the scores are the same whatever the number).
    /// </summary>
    public static DreamBenchScores Evaluate(StableDiffusionModel model, string name, DreamBenchOptions? options = null,
        IReadOnlyList<string>? prompts = null, IProgress<string>? progress = null, CancellationToken ct = default, int imageWorkers = 1)
    {
        options ??= new DreamBenchOptions();
        options.Validate();
        prompts ??= DemoSubject.RecontextualisationPrompts;
        var pipe = new StableDiffusionPipeline(model) { ImageWorkers = imageWorkers };
        double fidelitySum = 0, outline = 0, pattern = 0, color = 0;
        int obeyed = 0, subjectImages = 0, leaked = 0, classImages = 0;
        foreach (var prompt in prompts)
        {
            foreach (var (img, _) in Generate(pipe, prompt, options, ct))
                using (img)
                {
                    var request = SceneRequest.Parse(prompt, DemoSubject.Identifier);
                    var check = PromptFidelity.Check(img, request);
                    var fidelity = TinyWorld.SubjectFidelity.Score(img);
                    fidelitySum += fidelity.Score;
                    outline += fidelity.OutlineTerm;
                    pattern += fidelity.PatternTerm;
                    color += fidelity.ColorTerm;
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
        return new DreamBenchScores(name, fidelitySum / subjectImages, obeyed / (double)subjectImages, leaked / (double)classImages, subjectImages, classImages)
        {
            Outline = outline / subjectImages, Pattern = pattern / subjectImages, Color = color / subjectImages,
        };
    }

    /// <summary>
    /// The comparison the DreamBooth paper makes: the base model, DreamBooth without prior preservation, and DreamBooth
    /// with it (each trained from the base model with <paramref name="training"/>'s settings in a session under
    /// <paramref name="workFolder"/>). With <paramref name="trainingSeeds"/> each DreamBooth row is the mean over those
    /// training seeds (class images, data order and noise change with the seed, and the scores with them: measured
    /// 0.55 / 0.14 / 0.21 subject fidelity for seeds 1234 / 1 / 2); default: <paramref name="training"/>'s seed alone.
    /// Runs with <paramref name="training"/>'s libtorch threads and image workers, as the quickstart does.
    /// </summary>
    public static IReadOnlyList<DreamBenchScores> Compare(QuickstartOptions training, string workFolder, DreamBenchOptions? options = null,
        IReadOnlyList<string>? prompts = null, IProgress<string>? progress = null, CancellationToken ct = default, IReadOnlyList<long>? trainingSeeds = null)
    {
        ArgumentNullException.ThrowIfNull(training);
        trainingSeeds ??= [training.Seed];
        if (trainingSeeds.Count == 0) throw new ArgumentException("give at least one training seed", nameof(trainingSeeds));
        using var threads = CpuWorkers.UseThreads(training.Threads);
        int workers = training.EffectiveImageWorkers;
        var results = new List<DreamBenchScores>();
        using (var baseModel = ModelSource.Load(training.Model))
            results.Add(Evaluate(baseModel, "base model", options, prompts, progress, ct, workers));
        foreach (var prior in new[] { false, true })
        {
            var name = prior ? "DreamBooth + prior preservation" : "DreamBooth, no prior preservation";
            var runs = new List<DreamBenchScores>();
            foreach (var seed in trainingSeeds)
            {
                var folder = Path.Combine(workFolder, (prior ? "with-prior" : "no-prior") + (trainingSeeds.Count > 1 ? $"-seed{seed}" : ""));
                if (Directory.Exists(folder)) Directory.Delete(folder, true);
                using var model = ModelSource.Load(training.Model);
                Quickstart.Train(training with { PriorPreservation = prior, Seed = seed }, model, folder, progress, null, ct);
                runs.Add(Evaluate(model, trainingSeeds.Count > 1 ? $"{name} (seed {seed})" : name, options, prompts, progress, ct, workers));
                if (trainingSeeds.Count > 1) progress?.Report(runs[^1].ToString());
            }
            results.Add(runs.Count == 1 ? runs[0] : DreamBenchScores.Average(name, runs));
        }
        return results;
    }

    /// <summary>
    /// The VAE ceiling of subject fidelity on <paramref name="prompts"/> (default: the recontextualisation prompts): for
    /// each, the subject is rendered at the requested cell's centre on the requested background, at the instance images'
    /// mean size and the model's resolution, passed through the VAE (encode → mean latent → decode) and scored.
    /// </summary>
    public static DreamBenchCeiling VaeCeiling(StableDiffusionModel model, IReadOnlyList<string>? prompts = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        prompts ??= DemoSubject.RecontextualisationPrompts;
        if (prompts.Count == 0) throw new ArgumentException("give at least one prompt", nameof(prompts));
        var half = DemoSubject.Instances.Average(i => i.HalfExtent);
        var scores = new List<(SubjectFidelityResult R, string Prompt)>();
        using var noGrad = TorchSharp.torch.no_grad();
        foreach (var prompt in prompts)
        {
            var request = SceneRequest.Parse(prompt, DemoSubject.Identifier);
            if (request.Background is not { } background || request.Position is not { } position)
                throw new ArgumentException($"the prompt '{prompt}' must name a background and a position (e.g. \"{DemoSubject.RecontextualisationPrompts[0]}\")", nameof(prompts));
            using var clean = DemoSubject.Render(TinyWorldGeometry.CellCenter(TinyWorldGeometry.Column(position)), TinyWorldGeometry.CellCenter(TinyWorldGeometry.Row(position)),
                half, background, model.DefaultResolution);
            using var scope = TorchSharp.torch.NewDisposeScope();
            var pixels = Imaging.ImageTensor.ToTensor(clean).unsqueeze(0).to(model.Vae.DType).to(model.Device);
            var decoded = model.Vae.Decode(model.Vae.Encode(pixels).Mean).to(TorchSharp.torch.ScalarType.Float32).clamp(-1, 1).cpu();
            using var image = Imaging.ImageTensor.ToImages(decoded)[0];
            scores.Add((TinyWorld.SubjectFidelity.Score(image), prompt));
        }
        var lowest = scores.MinBy(x => x.R.Score);
        return new DreamBenchCeiling(scores.Average(x => x.R.Score), scores.Average(x => x.R.OutlineTerm), scores.Average(x => x.R.PatternTerm),
            scores.Average(x => x.R.ColorTerm), scores.Count, lowest.R.Score, lowest.Prompt);
    }

    /// <summary>The backgrounds the benchmark's prompts ask for (red, orange, white, black), in prompt order.</summary>
    public static IReadOnlyList<NamedColor> Backgrounds(IReadOnlyList<string>? prompts = null) =>
        (prompts ?? DemoSubject.RecontextualisationPrompts).Select(p => SceneRequest.Parse(p, DemoSubject.Identifier).Background)
            .OfType<NamedColor>().Distinct().ToList();

    /// <summary>
    /// The latent distances between every pair of palette colours under the model's VAE (<see cref="DreamBenchLatentContrast"/>):
    /// each colour is rendered as a plain image at the model's resolution, encoded (mean latent), and its latents are
    /// averaged over the central half of the latent grid (away from the convolutions' zero padding at the border).
    /// </summary>
    public static DreamBenchLatentContrast LatentContrast(StableDiffusionModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var colors = TinyWorldPalette.All;
        var d = new double[colors.Count, colors.Count];
        using (var noGrad = TorchSharp.torch.no_grad())
        using (var scope = TorchSharp.torch.NewDisposeScope())
        {
            var plain = PaletteLatents.PlainImages(model.DefaultResolution).to(model.Vae.DType).to(model.Device);
            var codes = PaletteLatents.Codes(model.Vae, plain).to(TorchSharp.torch.ScalarType.Float64).cpu() * model.Vae.Config.ScalingFactor;
            var distances = PaletteLatents.Distances(codes).data<double>().ToArray();
            for (var i = 0; i < colors.Count; i++)
                for (var j = 0; j < colors.Count; j++)
                    d[i, j] = i == j ? 0 : distances[i * colors.Count + j];
        }
        return new DreamBenchLatentContrast(colors, d);
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
