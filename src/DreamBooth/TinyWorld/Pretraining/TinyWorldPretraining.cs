using DreamBooth.Loading;
using System.Diagnostics;
using DreamBooth.Models.Clip;
using DreamBooth.Models.Common;
using DreamBooth.Models.Unet;
using DreamBooth.Models.Vae;
using DreamBooth.Sampling;
using DreamBooth.Text;
using DreamBooth.Training.Optim;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;
using TorchSharp.Modules;
using AdamW = DreamBooth.Training.Optim.AdamW;
using static TorchSharp.torch;

namespace DreamBooth.TinyWorld.Pretraining;

/// <summary>Final numbers of a pretraining run (also written to <c>recipe.json</c>).</summary>
public sealed record PretrainResult
{
    /// <summary>The written diffusers folder.</summary>
    public required string Folder { get; init; }

    /// <summary>Mean VAE reconstruction loss (L1 + MSE) over the last 10% of VAE steps.</summary>
    public required double FinalVaeLoss { get; init; }

    /// <summary>
    /// Mean diffusion loss over the last 10% of UNet steps: MSE against the prediction target (ε or v), object-weighted
    /// when <see cref="PretrainOptions.UnetObjectWeight"/> is set, without the timestep weights.
    /// </summary>
    public required double FinalUnetLoss { get; init; }

    /// <summary>Mean attribute cross-entropy of the text-pretraining stage over its last 10% of steps (NaN when skipped).</summary>
    public double FinalTextLoss { get; init; } = double.NaN;

    /// <summary>The VAE scaling factor (1 / std of the training latents) stored in vae/config.json.</summary>
    public required double ScalingFactor { get; init; }

    /// <summary>Seconds spent in the VAE stage (render + train + latents).</summary>
    public required double VaeSeconds { get; init; }

    /// <summary>Seconds spent in the UNet stage.</summary>
    public required double UnetSeconds { get; init; }

    /// <summary>Total wall-clock seconds.</summary>
    public required double TotalSeconds { get; init; }

    /// <summary>UNet steps done (less than the recipe's for an intermediate snapshot).</summary>
    public required int UnetStepsDone { get; init; }

    /// <summary>Parameters per component (unet, vae, text_encoder).</summary>
    public required IReadOnlyDictionary<string, long> Parameters { get; init; }
}

/// <summary>
/// The reproducible recipe that trains the tiny-world base model with the Stable Diffusion classes: (1) render the
/// TinyWorldDataset train split once; (2) train an <see cref="AutoencoderKL"/> on the images (L1 + MSE reconstruction,
/// tiny KL, as the LDM paper's KL autoencoder without the adversarial term), freeze it, cache the latents and set
/// <c>scaling_factor</c> = 1/std (Rombach et al. 2022, §4.3.2 / SD's 0.18215); (3) train a <see cref="ClipTextModel"/>
/// and a <see cref="UNet2DConditionModel"/> jointly from scratch (after a text-only attribute stage) with the DDPM
/// objective (Ho et al. 2020) — by default v-prediction (Salimans &amp; Ho 2022) on SD's scaled-linear schedule rescaled to
/// zero terminal SNR (Lin et al. 2023) —, caption dropout for classifier-free guidance, min-SNR-γ weights, an
/// object-masked loss and an EMA of the weights; (4) export fp16 safetensors in the diffusers layout (<see cref="TinyModelExport"/>).
/// </summary>
public static class TinyWorldPretraining
{
    /// <summary>
    /// Runs the whole recipe and writes the model folder to <paramref name="outputFolder"/> atomically (a temporary
    /// sibling folder is renamed at the end; an existing folder is replaced only once the new one is complete). The UNet
    /// stage writes its resumable state beside the folder (<c>&lt;out&gt;.pretrain-state.safetensors</c>) with every
    /// snapshot and when cancelled; with <paramref name="resume"/> a run with the same options continues from it (the
    /// data, VAE and latents are rebuilt deterministically, the text stage is skipped) and, at the same thread count,
    /// ends with the weights an uninterrupted run gives. The state file is deleted when the run completes.
    /// </summary>
    public static PretrainResult Run(PretrainOptions options, string outputFolder, IProgress<PretrainProgress>? progress = null,
        CancellationToken cancellationToken = default, bool resume = false)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputFolder);
        options.Validate();
        if (options.Threads > 0) torch.set_num_threads(options.Threads);
        var total = Stopwatch.StartNew();
        var tokenizer = ClipTokenizer.FromFolder(options.TokenizerFolder!);
        var statePath = PretrainState.PathFor(outputFolder);
        // read (and checked against the options) before any work, so a mismatch fails at once
        using var resumed = resume && options.UnetSteps > 0 && File.Exists(statePath) ? PretrainState.Load(statePath, options) : null;

        // 1. data
        var dataset = new TinyWorldDataset(new TinyWorldDatasetOptions
        {
            Seed = options.Seed,
            Count = options.TrainSamples,
            Split = TinyWorldSplit.Train,
            PartialCaptionProbability = options.PartialCaptionProbability,
        });
        using var pixels = RenderAll(dataset, progress, total, cancellationToken);
        var captions = dataset.Select(s => s.Caption).ToArray();

        torch.manual_seed(options.Seed);
        using var gen = new torch.Generator((ulong)options.Seed, torch.CPU);

        // 2. VAE (its batches mix the scenes with uncaptioned multi-coloured objects, see PatternedObjects)
        bool trainsVae = options.VaeFrom is null ? options.VaeSteps > 0 : options.VaeContinueSteps > 0;
        using var patterns = trainsVae && options.VaePatternFraction > 0 ? RenderPatterns(options.Seed, options.TrainSamples, progress, total, cancellationToken) : null;
        using var pasted = patterns is not null && options.VaePasteWeight > 0 ? RenderPatterns(options.Seed, options.TrainSamples, progress, total, cancellationToken, otherBackground: true) : null;
        using var vae = new AutoencoderKL(TinyModelConfigs.Vae(options));
        double vaeLoss;
        if (options.VaeFrom is { } vaeFolder)
        {
            // reuse an already trained VAE (same architecture): the VAE stage is deterministic, so this skips ~9 minutes
            LoadVae(vae, vaeFolder, options.VaeLayersPerBlock);
            // keep the reused VAE's recorded final loss in this run's recipe
            vaeLoss = RecordedLoss(vaeFolder, "final_vae_loss");
            if (options.VaeContinueSteps > 0)
            {
                // the loaded VAE's latents of the scenes, to anchor the continued encoder to (UNet compatibility)
                using var anchor = options.VaeAnchorWeight > 0 ? EncodeLatents(vae, pixels, progress, total, cancellationToken).Latents : null;
                vaeLoss = TrainVae(vae, pixels, patterns, pasted, anchor, options, options.VaeContinueSteps, options.VaeContinueLearningRate, gen, progress, total, cancellationToken);
            }
        }
        else
        {
            InitNorms(vae);
            vaeLoss = TrainVae(vae, pixels, patterns, pasted, null, options, options.VaeSteps, options.VaeLearningRate, gen, progress, total, cancellationToken);
        }
        MakePosteriorDeterministic(vae);
        vae.eval();
        foreach (var p in vae.parameters()) p.requires_grad = false;
        // UnetSteps 0 (allowed with InitFrom only) keeps the loaded UNet: no latents, masks or token ids are needed
        bool trainsUnet = options.UnetSteps > 0;
        // the UNet's data: the scenes plus captioned patterned objects (see UnetPatternFraction, UnetPatternColourWords)
        int unetPatterns = trainsUnet ? (int)Math.Round(options.TrainSamples * options.UnetPatternFraction) : 0;
        using var morePatterns = unetPatterns > (patterns?.shape[0] ?? 0) ? RenderPatterns(options.Seed, unetPatterns, progress, total, cancellationToken) : null;
        using var unetPixels = unetPatterns == 0 ? pixels.alias() : torch.cat([pixels, (morePatterns ?? patterns!).narrow(0, 0, unetPatterns)], 0);
        captions = [.. captions, .. Enumerable.Range(0, unetPatterns).Select(i => PatternedObjects.Caption(PatternedObjects.Sample(options.Seed, i), options.UnetPatternColourWords))];
        var (latents, std) = trainsUnet ? EncodeLatents(vae, unetPixels, progress, total, cancellationToken) : ((Tensor?)null, double.NaN);
        using var _latents = latents;
        // a continued UNet keeps the latent scale it was trained with; a warm-started one (another VAE) gets the new latents' 1/std
        double scaling = options.ContinuesInitLatents ? ReadScalingFactor(options.InitFrom!) : Math.Round(1.0 / std, 5); // the value vae/config.json stores, so the UNet trains with exactly it
        double vaeSeconds = total.Elapsed.TotalSeconds;

        // 3. text encoder + UNet
        using var te = new ClipTextModel(TinyModelConfigs.TextEncoder(options));
        InitTextEncoder(te);
        using var unet = new UNet2DConditionModel(TinyModelConfigs.Unet(options));
        InitNorms(unet);
        InitNorms(te);
        bool needsText = trainsUnet || options.TextPretrainSteps > 0;
        using var ids = needsText ? TokenizeAll(tokenizer, captions) : null;
        using var emptyIds = needsText ? TokenizeAll(tokenizer, [""]) : null;
        using var scaledLatents = trainsUnet ? (latents! * scaling).DetachFromDisposeScope() : null;
        using var objectMasks = trainsUnet ? LatentObjectMasks(unetPixels, latents!.shape[2]) : null;
        double textLoss = double.NaN;
        if (options.InitFrom is { } init)
        {
            // continue an earlier run: its UNet and text encoder (fp16 on disk, trained on in float32) are the start
            LoadComponent(unet, init, "unet", "diffusion_pytorch_model");
            LoadComponent(te, init, "text_encoder", "model");
        }
        if (resumed is not null)
        {
            StateDicts.LoadStrict(unet, resumed.Part("unet."), statePath);
            StateDicts.LoadStrict(te, resumed.Part("text_encoder."), statePath);
            textLoss = resumed.TextLoss;
        }
        else if (options.TextPretrainSteps > 0)
        {
            using var labels = CaptionLabels(captions);
            textLoss = PretrainTextEncoder(te, ids!, emptyIds!, labels, tokenizer.EosId, options, gen, progress, total, cancellationToken);
        }
        var parameters = new Dictionary<string, long>
        {
            ["unet"] = unet.parameters().Sum(p => p.numel()),
            ["vae"] = vae.parameters().Sum(p => p.numel()),
            ["text_encoder"] = te.parameters().Sum(p => p.numel()),
        };
        PretrainResult Result(double unetLoss, int stepsDone) => new()
        {
            Folder = Path.GetFullPath(outputFolder),
            FinalVaeLoss = vaeLoss,
            FinalUnetLoss = unetLoss,
            FinalTextLoss = textLoss,
            ScalingFactor = scaling,
            VaeSeconds = Math.Round(vaeSeconds, 1),
            UnetSeconds = Math.Round(total.Elapsed.TotalSeconds - vaeSeconds, 1),
            TotalSeconds = Math.Round(total.Elapsed.TotalSeconds, 1),
            Parameters = parameters,
            UnetStepsDone = stepsDone,
        };
        // UnetSteps 0 (allowed with InitFrom only) keeps the loaded UNet and text encoder as they are
        double unetLoss = options.UnetSteps == 0 ? RecordedLoss(options.InitFrom!, "final_unet_loss") : TrainUnet(unet, te, scaledLatents!, objectMasks!, ids!, emptyIds!, options, gen, progress, total,
            (step, loss) => TinyModelExport.Write(outputFolder, unet, vae, te, options, Result(loss, step)), cancellationToken,
            resumed, (step, running, tail, ema, opt) => PretrainState.Save(statePath, options, step, running, tail, textLoss, unet, te, ema, opt, gen.get_state()));

        // 4. export
        progress?.Report(new PretrainProgress(PretrainStage.Export, 0, 1, double.NaN, total.Elapsed));
        var result = Result(unetLoss, options.UnetSteps);
        TinyModelExport.Write(outputFolder, unet, vae, te, options, result);
        if (File.Exists(statePath)) File.Delete(statePath);
        progress?.Report(new PretrainProgress(PretrainStage.Export, 1, 1, double.NaN, total.Elapsed));
        return result;
    }

    /// <summary>Loads <paramref name="component"/>'s weights from a model folder into <paramref name="module"/> (strict, cast to its dtype).</summary>
    static void LoadComponent(nn.Module module, string modelFolder, string component, string weightsName)
    {
        var file = ComponentLoader.FindWeights(Path.Combine(modelFolder, component), [weightsName], null);
        var state = Safetensors.Load(file);
        try { StateDicts.LoadStrict(module, state, file); }
        finally { foreach (var t in state.Values) t.Dispose(); }
    }

    /// <summary>
    /// Loads the VAE of <paramref name="modelFolder"/> into <paramref name="vae"/>. A loaded VAE with fewer ResNet blocks
    /// per level than <paramref name="layersPerBlock"/> is grown: the blocks it lacks (the last ones of each level) keep
    /// their initialisation except their second convolution, which is zeroed, so each is the identity (x + 0) and the
    /// grown VAE computes exactly what the loaded one did.
    /// </summary>
    static void LoadVae(AutoencoderKL vae, string modelFolder, int layersPerBlock)
    {
        var folder = Path.Combine(modelFolder, "vae");
        var (configPath, config) = ComponentLoader.ReadConfig<AutoencoderKLConfig>(folder);
        int loaded = config.LayersPerBlock;
        if (loaded > layersPerBlock)
            throw new ArgumentException($"{configPath}: that VAE has layers_per_block {loaded}; VaeLayersPerBlock (--vae-layers-per-block) can grow a loaded VAE but not shrink it: set it to {loaded} or more.", nameof(modelFolder));
        // the blocks the loaded VAE lacks: encoder resnets loaded.., decoder resnets loaded + 1.. (diffusers' decoder has one more per level)
        bool Added(string key)
        {
            var parts = key.Split('.');
            int at = Array.IndexOf(parts, "resnets");
            if (at < 0 || at + 1 >= parts.Length || !int.TryParse(parts[at + 1], System.Globalization.CultureInfo.InvariantCulture, out int index)) return false;
            return parts[0] switch
            {
                "encoder" => parts[1] == "down_blocks" && index >= loaded,
                "decoder" => parts[1] == "up_blocks" && index >= loaded + 1,
                _ => false,
            };
        }
        var file = ComponentLoader.FindWeights(folder, ["diffusion_pytorch_model"], null);
        var state = Safetensors.Load(file);
        try
        {
            // the added blocks load their own (initial) values, with conv2 zeroed; everything else strictly from the file
            var source = new Dictionary<string, Tensor>(state);
            using (torch.no_grad())
                foreach (var (k, t) in vae.state_dict().Where(kv => Added(kv.Key)))
                    source[k] = k.Contains(".conv2.", StringComparison.Ordinal) ? t.zero_() : t;
            StateDicts.LoadStrict(vae, source, file);
        }
        finally { foreach (var t in state.Values) t.Dispose(); }
    }

    /// <summary>Renders every sample to a uint8 tensor [N, 3, 64, 64].</summary>
    static Tensor RenderAll(TinyWorldDataset dataset, IProgress<PretrainProgress>? progress, Stopwatch clock, CancellationToken ct) =>
        Render(dataset.Count, dataset.Options.ImageSize, i => dataset[i].Render(), progress, clock, ct);

    /// <summary>
    /// Renders <paramref name="count"/> <see cref="PatternedObjects"/> of stream <paramref name="seed"/> to uint8
    /// [N, 3, 64, 64]; with <paramref name="otherBackground"/> each on its second background
    /// (<see cref="PatternedObjects.OnOtherBackground"/>).
    /// </summary>
    static Tensor RenderPatterns(long seed, int count, IProgress<PretrainProgress>? progress, Stopwatch clock, CancellationToken ct, bool otherBackground = false) =>
        Render(count, 64, i =>
        {
            var o = PatternedObjects.Sample(seed, i);
            return PatternedObjects.Render(otherBackground ? PatternedObjects.OnOtherBackground(o, seed, i) : o);
        }, progress, clock, ct);

    /// <summary>Renders images 0..n−1 (each size×size) into one uint8 tensor [n, 3, size, size], reporting the Render stage.</summary>
    static Tensor Render(int n, int size, Func<int, Image<Rgb24>> render, IProgress<PretrainProgress>? progress, Stopwatch clock, CancellationToken ct)
    {
        var bytes = new byte[(long)n * size * size * 3];
        for (int i = 0; i < n; i++)
        {
            if (i % 256 == 0)
            {
                ct.ThrowIfCancellationRequested();
                progress?.Report(new PretrainProgress(PretrainStage.Render, i, n, double.NaN, clock.Elapsed));
            }
            using var img = render(i);
            img.CopyPixelDataTo(bytes.AsSpan(i * size * size * 3, size * size * 3));
        }
        progress?.Report(new PretrainProgress(PretrainStage.Render, n, n, double.NaN, clock.Elapsed));
        using var t = torch.tensor(bytes, [n, size, size, 3]);
        return t.permute(0, 3, 1, 2).contiguous().DetachFromDisposeScope();
    }

    /// <summary>A final loss recorded in a model folder's recipe.json (NaN when absent).</summary>
    static double RecordedLoss(string modelFolder, string key)
    {
        var recipe = Path.Combine(modelFolder, "recipe.json");
        if (!File.Exists(recipe)) return double.NaN;
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(recipe));
        return doc.RootElement.TryGetProperty(key, out var l) && l.TryGetDouble(out var v) ? v : double.NaN;
    }

    /// <summary>The <c>scaling_factor</c> of a model folder's vae/config.json.</summary>
    static double ReadScalingFactor(string modelFolder)
    {
        var path = Path.Combine(modelFolder, "vae", "config.json");
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(path));
        return doc.RootElement.TryGetProperty("scaling_factor", out var f) && f.TryGetDouble(out var v) && v > 0
            ? v : throw new InvalidDataException($"{path}: no positive scaling_factor; continue only from a model written by this recipe.");
    }

    /// <summary>uint8 [B,3,H,W] → float [-1, 1] (diffusers' normalize: 2·x/255 − 1).</summary>
    static Tensor ToSigned(Tensor bytes) => bytes.to(ScalarType.Float32) / 127.5f - 1.0f;

    /// <summary>
    /// Trains (or continues) the autoencoder: L1 + L2 reconstruction with object pixels weighted ×(1 + VaeObjectWeight),
    /// a tiny KL term, batches of scenes plus <see cref="PretrainOptions.VaePatternFraction"/> patterned objects, and —
    /// with <paramref name="anchor"/> (the loaded VAE's latents of <paramref name="pixels"/>) — a penalty on the drift of
    /// the scenes' latents, and — with <paramref name="pasted"/> (the patterned objects on their second background) — the
    /// latent-paste term (<see cref="PretrainOptions.VaePasteWeight"/>, <see cref="PasteLoss"/>).
    /// </summary>
    static double TrainVae(AutoencoderKL vae, Tensor pixels, Tensor? patterns, Tensor? pasted, Tensor? anchor, PretrainOptions o, int steps, double learningRate, torch.Generator gen,
        IProgress<PretrainProgress>? progress, Stopwatch clock, CancellationToken ct)
    {
        vae.train();
        // a frozen encoder (VaeFreezeEncoder) keeps every latent of the loaded VAE: only the decoding half learns
        var parameters = (o.VaeFreezeEncoder ? vae.DecoderParameters() : vae.parameters()).ToList();
        if (o.VaeFreezeEncoder)
            foreach (var p in vae.parameters().Except(parameters)) p.requires_grad = false;
        using var opt = new AdamW([new ParameterGroup("vae", parameters, learningRate)], new AdamWOptions { WeightDecay = 0 });
        var schedule = new LrScheduleOptions { Kind = LrScheduleKind.Cosine, WarmupSteps = Math.Min(o.WarmupSteps, Math.Max(0, steps - 1)), TrainingSteps = Math.Max(1, steps) };
        long n = pixels.shape[0];
        var tail = new List<double>();
        int tailFrom = steps - Math.Max(1, steps / 10);
        var guard = new NonFiniteSteps(3);
        using var plain = o.VaeColourSeparation > 0 ? PaletteLatents.PlainImages((int)pixels.shape[2]) : null;
        using var margins = o.VaeColourSeparation > 0 ? ColourMargins(o.VaeColourMargin) : null;
        for (int step = 0; step < steps; step++)
        {
            ct.ThrowIfCancellationRequested();
            using var scope = torch.NewDisposeScope();
            int nPattern = patterns is null ? 0 : (int)Math.Round(o.VaeBatchSize * o.VaePatternFraction);
            int nScene = o.VaeBatchSize - nPattern;
            var idx = torch.randint(n, [nScene], dtype: ScalarType.Int64, generator: gen);
            var x = ToSigned(pixels.index_select(0, idx));
            Tensor? patternIdx = null;
            if (nPattern > 0)
            {
                patternIdx = torch.randint(patterns!.shape[0], [nPattern], dtype: ScalarType.Int64, generator: gen);
                x = torch.cat([x, ToSigned(patterns.index_select(0, patternIdx))], 0);
            }
            var posterior = vae.Encode(x);
            // reconstruct from the posterior mean: with a KL weight this small the posterior collapses to its mean
            // anyway, and sampling (std ≈ 1 at initialisation) would only blur the decoder for the first thousands of steps
            var recon = vae.Decode(posterior.Mean);
            // objects cover a few % of the pixels: weight them ×(1 + ObjectWeight) so small shapes get sharp quickly
            var weight = 1.0f + (float)o.VaeObjectWeight * ObjectMask(x);
            var diff = recon - x;
            var rec = ((diff.abs() + diff.pow(2)) * weight).mean() / weight.mean();
            var kl = 0.5 * (posterior.Mean.pow(2) + posterior.Var - 1.0 - posterior.LogVar).sum([1, 2, 3]).mean();
            var loss = rec + o.VaeKlWeight * kl;
            if (anchor is not null && nScene > 0)
                loss = loss + o.VaeAnchorWeight * (posterior.Mean[..nScene] - anchor.index_select(0, idx)).pow(2).mean();
            if (plain is not null && nScene > 1)
                loss = loss + o.VaeColourSeparation * ColourSeparationLoss(vae, plain, margins!, posterior.Mean[..nScene].std().detach());
            if (pasted is not null && patternIdx is not null)
                loss = loss + o.VaePasteWeight * PasteLoss(vae, x[nScene..], posterior.Mean[nScene..], ToSigned(pasted.index_select(0, patternIdx)), o.VaeObjectWeight);
            opt.ZeroGrad();
            loss.backward();
            if (!Clipped(parameters, o.MaxGradNorm, guard, "VAE", step)) { opt.ZeroGrad(); continue; }
            LrSchedule.Apply(opt, schedule, step);
            opt.Step();
            double l = rec.item<float>();
            if (!double.IsFinite(l)) throw new InvalidOperationException($"VAE loss became {l} at step {step}; lower PretrainOptions.VaeLearningRate.");
            if (step >= tailFrom) tail.Add(l);
            progress?.Report(new PretrainProgress(PretrainStage.Vae, step + 1, steps, l, clock.Elapsed));
        }
        opt.ZeroGrad();
        return tail.Count == 0 ? double.NaN : tail.Average();
    }

    /// <summary>The colour-separation margins: <paramref name="perHundredDeltaE"/> × ΔE76 / 100 for every pair of palette colours (zero diagonal).</summary>
    internal static Tensor ColourMargins(double perHundredDeltaE)
    {
        var colours = TinyWorldPalette.All;
        var m = new float[colours.Count * colours.Count];
        for (int i = 0; i < colours.Count; i++)
            for (int j = 0; j < colours.Count; j++)
                m[i * colours.Count + j] = (float)(perHundredDeltaE * ColorMath.DeltaE(TinyWorldPalette.ToLab(colours[i]), TinyWorldPalette.ToLab(colours[j])) / 100);
        return torch.tensor(m).view(colours.Count, colours.Count);
    }

    /// <summary>
    /// The colour-separation term (<see cref="PretrainOptions.VaeColourSeparation"/>): the central mean latents of the
    /// plain palette images, in units of <paramref name="latentStd"/>, and the mean over pairs of the squared shortfall
    /// of their distance below <paramref name="margins"/>.
    /// </summary>
    internal static Tensor ColourSeparationLoss(AutoencoderKL vae, Tensor plain, Tensor margins, Tensor latentStd)
    {
        var codes = PaletteLatents.Codes(vae, plain) / latentStd.clamp_min(1e-6);
        var d = PaletteLatents.Distances(codes);
        var k = codes.shape[0];
        var offDiagonal = 1 - torch.eye(k);
        return ((margins - d).clamp_min(0).pow(2) * offDiagonal).sum() / (k * (k - 1));
    }

    /// <summary>
    /// The latent-paste term: <paramref name="x"/> and <paramref name="other"/> show the same objects on two backgrounds
    /// (images in [-1, 1], <paramref name="latents"/> = the encoder's means of <paramref name="x"/>). The objects' pixels
    /// are where the two agree; their coverage of each latent pixel (area average) mixes the latents of
    /// <paramref name="x"/> into those of <paramref name="other"/>, and the decoded mix must reproduce
    /// <paramref name="other"/> (L1 + MSE, object pixels weighted like the reconstruction). Gradients reach the encoder
    /// (object codes that do not depend on their surroundings) and the decoder (that draws such a code on any background).
    /// </summary>
    internal static Tensor PasteLoss(AutoencoderKL vae, Tensor x, Tensor latents, Tensor other, double objectWeight)
    {
        var agree = (x - other).abs().sum(1, keepdim: true).lt(1e-3).to(ScalarType.Float32);
        int factor = (int)(x.shape[2] / latents.shape[2]);
        var coverage = nn.functional.avg_pool2d(agree, factor, factor);
        var mixed = coverage * latents + (1 - coverage) * vae.Encode(other).Mean;
        var diff = vae.Decode(mixed) - other;
        var weight = 1.0f + (float)objectWeight * agree;
        return ((diff.abs() + diff.pow(2)) * weight).mean() / weight.mean();
    }

    /// <summary>
    /// 1 where a pixel differs from the background (the median of the four corners, which no object reaches), else 0:
    /// [B, 1, H, W] from images in [-1, 1].
    /// </summary>
    static Tensor ObjectMask(Tensor x)
    {
        var sortedCorners = torch.stack([x[.., .., 0, 0], x[.., .., 0, -1], x[.., .., -1, 0], x[.., .., -1, -1]], -1).sort(-1).Values;
        var corners = (sortedCorners.select(-1, 1) + sortedCorners.select(-1, 2)) / 2;
        return (x - corners.unsqueeze(-1).unsqueeze(-1)).abs().sum(1, keepdim: true).gt(0.1).to(ScalarType.Float32);
    }

    /// <summary>
    /// Latent-resolution object masks [N, 1, h, w]: a latent position is covered when any pixel of its footprint is an
    /// object pixel, dilated by one latent pixel (the VAE's receptive field spreads an edge into its neighbours).
    /// </summary>
    static Tensor LatentObjectMasks(Tensor pixels, long latentSize)
    {
        using var noGrad = torch.no_grad();
        var parts = new List<Tensor>();
        try
        {
            long n = pixels.shape[0];
            int factor = (int)(pixels.shape[2] / latentSize);
            for (long s = 0; s < n; s += 256)
            {
                using var scope = torch.NewDisposeScope();
                var x = ToSigned(pixels[(int)s..(int)Math.Min(n, s + 256)]);
                var m = nn.functional.max_pool2d(ObjectMask(x), factor, factor);
                parts.Add(nn.functional.max_pool2d(m, 3, 1, 1).MoveToOuterDisposeScope());
            }
            return torch.cat(parts, 0).DetachFromDisposeScope();
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <summary>Posterior means of every image (unscaled) and their standard deviation.</summary>
    static (Tensor Latents, double Std) EncodeLatents(AutoencoderKL vae, Tensor pixels, IProgress<PretrainProgress>? progress, Stopwatch clock, CancellationToken ct)
    {
        using var noGrad = torch.no_grad();
        long n = pixels.shape[0];
        var parts = new List<Tensor>();
        try
        {
            for (long s = 0; s < n; s += 64)
            {
                ct.ThrowIfCancellationRequested();
                using var scope = torch.NewDisposeScope();
                long e = Math.Min(n, s + 64);
                parts.Add(vae.Encode(ToSigned(pixels[(int)s..(int)e])).Mean.detach().MoveToOuterDisposeScope());
                progress?.Report(new PretrainProgress(PretrainStage.Latents, (int)e, (int)n, double.NaN, clock.Elapsed));
            }
            var all = torch.cat(parts, 0).DetachFromDisposeScope();
            double std = all.std().item<float>();
            if (!(std > 1e-6) || !double.IsFinite(std))
                throw new InvalidOperationException($"the VAE latents have std {std}: the autoencoder did not train (raise PretrainOptions.VaeSteps).");
            return (all, std);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <summary>
    /// Sets every GroupNorm / LayerNorm to weight 1, bias 0 (PyTorch's init). The model classes build their layers for
    /// loading, where TorchSharp leaves norm parameters created with an explicit device/dtype uninitialised.
    /// </summary>
    internal static void InitNorms(nn.Module module)
    {
        using var noGrad = torch.no_grad();
        foreach (var m in module.modules())
        {
            switch (m)
            {
                case GroupNorm g:
                    g.weight?.fill_(1); g.bias?.zero_();
                    break;
                case LayerNorm l:
                    l.weight?.fill_(1); l.bias?.zero_();
                    break;
            }
        }
    }

    /// <summary>CLIP's initialisation of the embeddings (tokens N(0, 0.02), positions N(0, 0.01)).</summary>
    static void InitTextEncoder(ClipTextModel te)
    {
        using var noGrad = torch.no_grad();
        foreach (var (name, p) in te.named_parameters())
        {
            if (name.EndsWith("token_embedding.weight", StringComparison.Ordinal)) p.normal_(0, 0.02);
            else if (name.EndsWith("position_embedding.weight", StringComparison.Ordinal)) p.normal_(0, 0.01);
        }
    }

    /// <summary>
    /// The VAE is trained as a deterministic autoencoder (reconstruction of the posterior mean) with a tiny KL weight, so
    /// its log-variance output is meaningless (the KL term pulls it to σ ≈ 1, which would drown the latents when a
    /// trainer samples the posterior as diffusers does). Make the posterior a point mass: the log-variance half of
    /// <c>quant_conv</c> outputs -30 (diffusers' clamp), σ = e^-15.
    /// </summary>
    internal static void MakePosteriorDeterministic(AutoencoderKL vae)
    {
        using var noGrad = torch.no_grad();
        var sd = vae.state_dict();
        var w = sd["quant_conv.weight"];
        var b = sd["quant_conv.bias"];
        int half = (int)(w.shape[0] / 2);
        w[half..].zero_();
        b[half..].fill_(-30.0);
    }

    /// <summary>Token ids [N, 77] exactly as the pipeline's prompt encoder builds them (BOS, tokens, EOS, EOS padding).</summary>
    internal static Tensor TokenizeAll(ClipTokenizer tokenizer, IReadOnlyList<string> captions)
    {
        var rows = new List<long[]>();
        foreach (var c in captions)
        {
            var chunks = PromptWeighting.Tokenize(tokenizer, c, new PromptChunkOptions { ParseEmphasis = false });
            if (chunks.ChunkCount != 1) throw new InvalidOperationException($"caption '{c}' needs {chunks.ChunkCount} chunks of 77 tokens; tiny-world captions must fit in one.");
            rows.Add(chunks.ChunkIds(0));
        }
        int len = rows[0].Length;
        return torch.tensor(rows.SelectMany(r => r).ToArray(), [rows.Count, len]).DetachFromDisposeScope();
    }

    /// <summary>Classes per caption attribute (each has one more class, "not said"): shape, colour, size, position, background, count.</summary>
    static readonly int[] AttributeClasses =
    [
        Enum.GetValues<ShapeKind>().Length, Enum.GetValues<NamedColor>().Length, Enum.GetValues<ObjectSize>().Length,
        Enum.GetValues<GridPosition>().Length, Enum.GetValues<NamedColor>().Length, Enum.GetValues<ObjectCount>().Length,
    ];

    /// <summary>What each caption says, as class indices [N, 6] (the last class of an attribute = not said).</summary>
    internal static Tensor CaptionLabels(IReadOnlyList<string> captions)
    {
        var rows = new long[captions.Count * AttributeClasses.Length];
        for (int i = 0; i < captions.Count; i++)
        {
            var r = SceneRequest.Parse(captions[i]);
            int?[] values = [(int?)r.Shape, (int?)r.Color, (int?)r.Size, (int?)r.Position, (int?)r.Background, (int?)r.Count];
            for (int a = 0; a < values.Length; a++) rows[i * values.Length + a] = values[a] ?? AttributeClasses[a];
        }
        return torch.tensor(rows, [captions.Count, AttributeClasses.Length]).DetachFromDisposeScope();
    }

    /// <summary>
    /// Trains the text encoder alone: a linear head (discarded afterwards) must name every attribute of the caption from
    /// each end-of-text / padding position (CLIP's pad token is its end-of-text token). Empty captions (caption dropout)
    /// are included with every attribute "not said". Returns the mean loss over the last 10% of steps.
    /// </summary>
    static double PretrainTextEncoder(ClipTextModel te, Tensor ids, Tensor emptyIds, Tensor labels, int eosId, PretrainOptions o,
        torch.Generator gen, IProgress<PretrainProgress>? progress, Stopwatch clock, CancellationToken ct)
    {
        te.train();
        int hidden = o.TextHiddenSize, total = AttributeClasses.Sum(c => c + 1);
        using var head = nn.Linear(hidden, total);
        var parameters = te.parameters().Concat(head.parameters()).ToList();
        using var opt = new AdamW([new ParameterGroup("text", parameters, o.TextPretrainLearningRate)], new AdamWOptions { WeightDecay = 1e-2 });
        var schedule = new LrScheduleOptions { Kind = LrScheduleKind.Cosine, WarmupSteps = Math.Min(o.WarmupSteps, o.TextPretrainSteps - 1), TrainingSteps = o.TextPretrainSteps };
        using var notSaid = torch.tensor(AttributeClasses.Select(c => (long)c).ToArray());
        long n = ids.shape[0];
        var tail = new List<double>();
        int tailFrom = o.TextPretrainSteps - Math.Max(1, o.TextPretrainSteps / 10);
        var guard = new NonFiniteSteps(3);
        for (int step = 0; step < o.TextPretrainSteps; step++)
        {
            ct.ThrowIfCancellationRequested();
            using var scope = torch.NewDisposeScope();
            int b = o.TextPretrainBatchSize;
            var idx = torch.randint(n, [b], dtype: ScalarType.Int64, generator: gen);
            var tok = ids.index_select(0, idx);
            var lab = labels.index_select(0, idx);
            var drop = torch.rand([b], generator: gen).lt(o.CaptionDropout).unsqueeze(1);
            tok = torch.where(drop, emptyIds.expand(b, -1), tok);
            lab = torch.where(drop, notSaid.unsqueeze(0).expand(b, -1), lab);
            var states = te.Forward(tok).LastHiddenState;          // [B, 77, H]
            var logits = head.forward(states);                       // [B, 77, total]
            var mask = tok.eq(eosId).to(ScalarType.Float32);         // end-of-text and padding positions
            var loss = torch.zeros([], dtype: ScalarType.Float32);
            int offset = 0;
            for (int a = 0; a < AttributeClasses.Length; a++)
            {
                int c = AttributeClasses[a] + 1;
                var logp = logits[.., .., offset..(offset + c)].log_softmax(-1);
                var target = lab[.., a].view(b, 1, 1).expand(b, logp.shape[1], 1);
                var nll = -logp.gather(-1, target).squeeze(-1);      // [B, 77]
                loss = loss + (nll * mask).sum() / mask.sum();
                offset += c;
            }
            opt.ZeroGrad();
            loss.backward();
            if (!Clipped(parameters, o.MaxGradNorm, guard, "text-pretraining", step)) { opt.ZeroGrad(); continue; }
            LrSchedule.Apply(opt, schedule, step);
            opt.Step();
            double l = loss.item<float>();
            if (!double.IsFinite(l)) throw new InvalidOperationException($"text-pretraining loss became {l} at step {step}; lower PretrainOptions.TextPretrainLearningRate.");
            if (step >= tailFrom) tail.Add(l);
            progress?.Report(new PretrainProgress(PretrainStage.Text, step + 1, o.TextPretrainSteps, l, clock.Elapsed));
        }
        opt.ZeroGrad();
        return tail.Count == 0 ? double.NaN : tail.Average();
    }

    static double TrainUnet(UNet2DConditionModel unet, ClipTextModel te, Tensor latents, Tensor objectMasks, Tensor ids, Tensor emptyIds,
        PretrainOptions o, torch.Generator gen, IProgress<PretrainProgress>? progress, Stopwatch clock,
        Action<int, double> snapshot, CancellationToken ct,
        PretrainState? resumed = null, Action<int, double, IReadOnlyList<double>, IReadOnlyList<Tensor>, IReadOnlyDictionary<string, Tensor>>? saveState = null)
    {
        unet.train();
        te.train();
        using var noise = new NoiseSchedule(TinyModelConfigs.Scheduler(o));
        bool v = o.Prediction == PredictionType.VPrediction;
        var unetParams = unet.parameters().ToList();
        var teParams = te.parameters().ToList();
        var all = unetParams.Concat(teParams).ToList();
        using var opt = new AdamW(
            [new ParameterGroup("unet", unetParams, o.UnetLearningRate), new ParameterGroup("text_encoder", teParams, o.TextLearningRate)],
            new AdamWOptions { WeightDecay = 1e-2 });
        var schedule = new LrScheduleOptions { Kind = LrScheduleKind.Cosine, WarmupSteps = Math.Min(o.WarmupSteps, o.UnetSteps - 1), TrainingSteps = o.UnetSteps };
        using var ema = o.EmaDecay > 0 ? new Ema(all) : null;
        long n = latents.shape[0];
        int T = noise.NumTrainTimesteps;
        var tail = new List<double>();
        int tailFrom = o.UnetSteps - Math.Max(1, o.UnetSteps / 10);
        double running = double.NaN;
        var guard = new NonFiniteSteps(3);
        int start = 0;
        if (resumed is not null)
        {
            opt.LoadStateDict(resumed.Part("optimizer."));
            ema?.Load(resumed.Part("ema."));
            gen.set_state(resumed.Tensors["rng.generator"]);
            (start, running) = (resumed.Step, resumed.Running);
            tail.AddRange(resumed.Tail);
        }
        void Save(int stepsDone)
        {
            if (saveState is null) return;
            using var scope = torch.NewDisposeScope();
            saveState(stepsDone, running, tail, ema?.Shadow ?? [], opt.StateDict());
        }
        for (int step = start; step < o.UnetSteps; step++)
        {
            if (ct.IsCancellationRequested)
            {
                if (step > start) Save(step); // Ctrl+C keeps the work done so far (see PretrainState)
                ct.ThrowIfCancellationRequested();
            }
            using var scope = torch.NewDisposeScope();
            int b = o.UnetBatchSize;
            var idx = torch.randint(n, [b], dtype: ScalarType.Int64, generator: gen);
            var x0 = latents.index_select(0, idx);
            var tok = ids.index_select(0, idx);
            var drop = torch.rand([b], generator: gen).lt(o.CaptionDropout).unsqueeze(1);
            tok = torch.where(drop, emptyIds.expand(b, -1), tok);
            var eps = torch.randn(x0.shape, generator: gen);
            if (o.NoiseOffset > 0)
                eps = eps + o.NoiseOffset * torch.randn([b, x0.shape[1], 1, 1], generator: gen);
            var t = torch.randint(T, [b], dtype: ScalarType.Int64, generator: gen);
            var xt = noise.AddNoise(x0, eps, t);
            var context = te.Forward(tok).LastHiddenState;
            var pred = unet.Forward(xt, t, context);
            var target = v ? noise.GetVelocity(x0, eps, t) : eps;
            var sq = (pred - target).pow(2);
            Tensor perSample;
            if (o.UnetObjectWeight > 0)
            {
                // masked loss: object positions count (1 + weight)×; normalised so the loss keeps its scale
                var w = 1.0f + (float)o.UnetObjectWeight * objectMasks.index_select(0, idx);
                perSample = (sq * w).mean([1, 2, 3]) / w.mean();
            }
            else perSample = sq.mean([1, 2, 3]);
            // min-SNR-γ as a truncation of the x₀-equivalent weight: ε-loss × min(SNR, γ)/SNR; for v (whose loss is
            // the ε-loss × (1 + 1/SNR)) the same truncation, γ / max(SNR, γ), which stays 1 at SNR = 0 instead of the
            // train scripts' min(SNR, γ)/(SNR + 1), which would give the zero-SNR timesteps no weight at all
            Tensor weights;
            if (o.MinSnrGamma <= 0) weights = torch.ones([b]);
            else if (v) weights = o.MinSnrGamma / noise.Snr(t).clamp_min(o.MinSnrGamma);
            else weights = noise.MinSnrWeights(t, o.MinSnrGamma, PredictionType.Epsilon);
            if (o.HighNoiseWeightCap > 0)
                weights = weights * (1.0 + noise.Snr(t).reciprocal()).clamp_max(o.HighNoiseWeightCap);
            var loss = (perSample * weights).mean();
            opt.ZeroGrad();
            loss.backward();
            if (!Clipped(all, o.MaxGradNorm, guard, "UNet", step)) { opt.ZeroGrad(); continue; }
            LrSchedule.Apply(opt, schedule, step);
            opt.Step();
            ema?.Update(Math.Min(o.EmaDecay, (1.0 + step) / (10.0 + step)));
            double l = perSample.mean().item<float>();
            if (!double.IsFinite(l)) throw new InvalidOperationException($"UNet loss became {l} at step {step}; lower PretrainOptions.UnetLearningRate.");
            running = double.IsNaN(running) ? l : 0.98 * running + 0.02 * l;
            if (step >= tailFrom) tail.Add(l);
            progress?.Report(new PretrainProgress(PretrainStage.Unet, step + 1, o.UnetSteps, running, clock.Elapsed));
            if (o.SnapshotEvery > 0 && (step + 1) % o.SnapshotEvery == 0 && step + 1 < o.UnetSteps)
            {
                // write the EMA weights as an intermediate model (same folder; the final export replaces it)
                unet.eval(); te.eval();
                ema?.Swap();
                snapshot(step + 1, running);
                ema?.Swap();
                unet.train(); te.train();
                Save(step + 1);
            }
        }
        opt.ZeroGrad();
        ema?.CopyTo();
        unet.eval();
        te.eval();
        // NaN (not an exception) when every tail step was skipped as non-finite, as the VAE and text stages report it
        return tail.Count == 0 ? double.NaN : tail.Average();
    }

    /// <summary>Exponential moving average of parameters (shadow copies in float32); <see cref="CopyTo"/> writes them back.</summary>
    sealed class Ema : IDisposable
    {
        readonly List<Parameter> parameters;
        readonly List<Tensor> shadow;

        public Ema(List<Parameter> parameters)
        {
            this.parameters = parameters;
            using var noGrad = torch.no_grad();
            shadow = parameters.Select(p => p.detach().clone().DetachFromDisposeScope()).ToList();
        }

        public void Update(double decay)
        {
            using var noGrad = torch.no_grad();
            // one weight tensor (0-dim, as the implicit conversion makes it) held until every lerp_ has returned: an
            // implicit temporary per call is referenced by nothing once its handle is passed on (see AdamW.ApplyAdamW)
            using Tensor weight = 1 - decay;
            for (int i = 0; i < parameters.Count; i++) shadow[i].lerp_(parameters[i], weight);
        }

        /// <summary>Exchanges the live weights and the averaged ones (twice = no change).</summary>
        public void Swap()
        {
            using var noGrad = torch.no_grad();
            for (int i = 0; i < parameters.Count; i++)
            {
                using var tmp = parameters[i].detach().clone();
                parameters[i].copy_(shadow[i]);
                shadow[i].copy_(tmp);
            }
        }

        /// <summary>The averaged weights, in the order of the parameters given.</summary>
        public IReadOnlyList<Tensor> Shadow => shadow;

        /// <summary>Restores averaged weights saved from <see cref="Shadow"/> (keys "0", "1", …).</summary>
        public void Load(IReadOnlyDictionary<string, Tensor> saved)
        {
            if (saved.Count != shadow.Count)
                throw new InvalidDataException($"the pretraining state holds {saved.Count} EMA tensors, this model has {shadow.Count}; delete the state file to start over.");
            using var noGrad = torch.no_grad();
            for (int i = 0; i < shadow.Count; i++) shadow[i].copy_(saved[i.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        }

        public void CopyTo()
        {
            using var noGrad = torch.no_grad();
            for (int i = 0; i < parameters.Count; i++) parameters[i].copy_(shadow[i]);
        }

        public void Dispose()
        {
            foreach (var s in shadow) s.Dispose();
        }
    }

    /// <summary>
    /// Clips the gradients and returns true, or — when their norm is not finite — records a discarded step and returns
    /// false (the caller skips the update); more than three in a row throw (see <see cref="NonFiniteSteps"/>).
    /// </summary>
    static bool Clipped(IEnumerable<TorchSharp.Modules.Parameter> parameters, double maxNorm, NonFiniteSteps guard, string stage, int step)
    {
        var norm = GradClip.ClipGradNorm(parameters, maxNorm);
        if (double.IsFinite(norm)) { guard.Good(); return true; }
        if (!guard.Discard())
            throw new InvalidOperationException($"{stage} gradient norm became {norm} at step {step} ({guard.InARow} steps in a row); lower the stage's learning rate in PretrainOptions.");
        return false;
    }
}
