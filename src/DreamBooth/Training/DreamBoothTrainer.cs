using System.Diagnostics;
using System.Text.Json;
using DreamBooth.Imaging;
using DreamBooth.Loading;
using DreamBooth.Models.Common;
using DreamBooth.Pipelines;
using DreamBooth.Sampling;
using DreamBooth.Training.Optim;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using AdamW = DreamBooth.Training.Optim.AdamW;

namespace DreamBooth.Training;

/// <summary>What one optimisation step did (for charts; also appended to the session's <c>metrics.jsonl</c>).</summary>
public sealed record TrainingStepRecord(int Step, double Loss, double InstanceLoss, double? PriorLoss, double LearningRate,
    double? TextEncoderLearningRate, double GradNorm, double Seconds);

/// <summary>Progress of a training run, reported after every step and at phase changes.</summary>
public sealed record TrainingProgress(string Phase, int Step, int TotalSteps, TrainingStepRecord? Last, TimeSpan Elapsed, string? Message = null);

/// <summary>How a run ended.</summary>
public sealed record TrainingResult(int Step, string? LastCheckpoint, bool Cancelled, string? StoppedReason, IReadOnlyList<TrainingStepRecord> History,
    IReadOnlyList<string> Samples)
{
    public bool Completed => !Cancelled && StoppedReason is null;

    /// <summary>Batches discarded because their loss or gradient was not finite (<see cref="TrainingOptions.MaxNonFiniteStepsInARow"/>); they are not counted in <see cref="Step"/>.</summary>
    public int DiscardedSteps { get; init; }
}

/// <summary>
/// DreamBooth fine-tuning (Ruiz et al. 2023) of a session on a loaded model, as the fast-DreamBooth Colab does it on top
/// of diffusers' train_dreambooth.py: UNet steps with its learning rate, the text encoder trained for its first N steps
/// and then frozen, prior preservation with cached class images, checkpoints every N steps that hold everything needed
/// to continue the very same run (weights, optimizer, RNG, step, data position), validation samples, LoRA.
/// The model passed in is trained in place. Compute is synchronous; progress is reported on the calling thread.
/// </summary>
public sealed class DreamBoothTrainer
{
    /// <summary>Test hook: called after each backward pass with the step it belongs to (1-based), before clipping.</summary>
    internal Action<int>? AfterBackward { get; set; }

    public DreamBoothTrainer(DreamBoothSession session, StableDiffusionModel model)
    {
        Session = session;
        Model = model;
    }

    public DreamBoothSession Session { get; }

    public StableDiffusionModel Model { get; }

    /// <summary>
    /// CPU threads that generate class images at once (<see cref="StableDiffusionPipeline.ImageWorkers"/>; default 1).
    /// Training steps are not affected; the class images are the same whatever the number.
    /// </summary>
    public int ImageWorkers { get; set; } = 1;

    /// <summary>Called after a checkpoint is written (tests use it to kill a run at a known point).</summary>
    public Action<string>? CheckpointWritten { get; set; }

    /// <summary>The LoRA networks of the last run (null for full fine-tuning).</summary>
    public LoraNetwork? UnetLora { get; private set; }

    public LoraNetwork? TextEncoderLora { get; private set; }

    /// <summary>
    /// Trains up to <see cref="TrainingOptions.UnetSteps"/>. With <paramref name="resume"/>, continues from the newest
    /// checkpoint of the session (bit-identical to an uninterrupted run on the CPU in fp32 with the same thread count).
    /// Cancelling stops after the current step and writes a checkpoint first.
    /// </summary>
    public TrainingResult Train(IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default, bool resume = true)
    {
        var options = Session.File.Options;
        options.Validate();
        int factor = Model.VaeScaleFactor;
        if (options.Resolution % factor != 0)
            throw new ArgumentException($"Resolution: {options.Resolution} is not a multiple of the VAE factor {factor}", nameof(options.Resolution));
        using var sessionLock = Session.Lock();
        var clock = Stopwatch.StartNew();
        void Report(string phase, int step, TrainingStepRecord? last = null, string? message = null) =>
            progress?.Report(new TrainingProgress(phase, step, options.UnetSteps, last, clock.Elapsed, message));

        // 1. prior preservation: class images are generated once and cached in the session
        if (options.PriorPreservation)
        {
            var missing = ClassImages.Missing(Session).Values.Sum();
            if (missing > 0)
            {
                Report("class images", 0, message: $"generating {missing} class images with the base model");
                ClassImages.EnsureGenerated(Session, Model, progress: new InlineProgress<ClassImageProgress>(p =>
                    Report("class images", 0, message: $"{p.Concept}: {p.Done}/{p.Total}")), ct: cancellationToken, imageWorkers: ImageWorkers);
            }
        }

        // 2. data: VAE posteriors and token ids, once
        Report("encoding", 0, message: "encoding instance and class images");
        using var data = TrainingData.Load(Session, Model.Vae, Model.Tokenizer, options.PriorPreservation, ct: cancellationToken);
        using var schedule = new NoiseSchedule(Model.Scheduler);
        var unet = Model.Unet;
        var te = Model.TextEncoder;
        var dtype = options.Precision == TrainingPrecision.Bf16 ? ScalarType.BFloat16 : ScalarType.Float32;
        if (unet.DType != dtype) unet.to(dtype);
        if (te.DType != dtype) te.to(dtype);

        // 3. what is trained
        bool lora = options.Lora is not null;
        bool teTrained = options.TextEncoderSteps > 0 && (!lora || options.Lora!.TrainTextEncoder);
        foreach (var p in unet.parameters()) p.requires_grad = !lora;
        foreach (var p in te.parameters()) p.requires_grad = false;
        DisposeLora();
        // identifier-only text-encoder training: the embedding rows of the identifiers, every other row kept as it is
        using var identifierRows = !lora && teTrained && options.TextEncoderTraining == TextEncoderTraining.IdentifierEmbeddings
            ? IdentifierEmbeddings.Create(te, Model.Tokenizer, Session.File.Concepts.Select(c => c.Identifier))
            : null;
        List<Parameter> unetParams, teParams;
        if (lora)
        {
            // adapters stay in float32 (a few MB) on a base that runs in the chosen precision, as kohya does
            UnetLora = LoraNetwork.Attach(unet, "unet", options.Lora!.Rank, options.Lora.Alpha, Model.Device, ScalarType.Float32);
            unetParams = UnetLora.Parameters().ToList();
            if (teTrained)
            {
                TextEncoderLora = LoraNetwork.Attach(te, "text_encoder", options.Lora.Rank, options.Lora.Alpha, Model.Device, ScalarType.Float32);
                teParams = TextEncoderLora.Parameters().ToList();
            }
            else teParams = [];
        }
        else
        {
            unetParams = [];
            foreach (var (name, p) in unet.named_parameters())
            {
                if (options.UnetBlockLearningRates.Multiplier(UnetBlockLearningRates.PartOf(name)) > 0) unetParams.Add(p);
                else p.requires_grad = false;
            }
            teParams = identifierRows is not null ? [identifierRows.Weight] : teTrained ? te.parameters().ToList() : [];
        }
        unet.GradientCheckpointing = options.GradientCheckpointing;

        var groups = new List<ParameterGroup>();
        if (options.UnetBlockLearningRates.IsUniform || lora) groups.Add(new("unet", unetParams, options.UnetLearningRate));
        else
            foreach (var part in unet.named_parameters().Where(x => x.parameter.requires_grad).GroupBy(x => UnetBlockLearningRates.PartOf(x.name)))
                groups.Add(new($"unet.{part.Key}", part.Select(x => x.parameter), options.UnetLearningRate * options.UnetBlockLearningRates.Multiplier(part.Key)));
        if (teParams.Count > 0) groups.Add(new ParameterGroup("text_encoder", teParams, options.TextEncoderLearningRate));
        var adamOptions = new AdamWOptions { Beta1 = options.AdamBeta1, Beta2 = options.AdamBeta2, Eps = options.AdamEpsilon, WeightDecay = options.WeightDecay, RoundingSeed = options.Seed };
        using ITrainingOptimizer optimizer = options.Optimizer == OptimizerKind.AdamW8bit ? new AdamW8bit(groups, adamOptions) : new AdamW(groups, adamOptions);
        var lrOptions = new LrScheduleOptions { Kind = options.LrSchedule, WarmupSteps = options.LrWarmupSteps, TrainingSteps = Math.Max(1, options.UnetSteps) };
        lrOptions.Validate();
        using var gen = new Generator((ulong)options.Seed, torch.CPU);

        // 4. resume
        int step = 0, teDone = 0;
        long samples = 0;
        string? lastCheckpoint = null;
        if (resume && CheckpointStore.LoadLatest(Session.CheckpointsFolder) is { } ck)
        {
            using (ck)
            {
                var kind = lora ? "lora" : "full";
                if (ck.Info.Kind != kind)
                    throw new InvalidOperationException($"the session's last checkpoint ({ck.Folder}) is a {ck.Info.Kind} run but the options ask for {kind}; start a new session or change Lora back");
                var wasBlocks = ck.Info.Options.UnetBlockLearningRates ?? new();
                if (!lora && !wasBlocks.SameGroups(options.UnetBlockLearningRates))
                    throw new InvalidOperationException($"the session's last checkpoint ({ck.Folder}) was trained with UNet block learning rates {wasBlocks} (down,mid,up) "
                        + $"but the options ask for {options.UnetBlockLearningRates}, which trains other parts of the UNet: its optimizer state does not fit. "
                        + "Resume with the same parts frozen (other non-zero multipliers are fine) or start over without resuming (train --no-resume).");
                var wasTe = ck.Info.Options.TextEncoderTraining;
                if (!lora && teTrained && wasTe != options.TextEncoderTraining && ck.Info.TextEncoderStepsDone > 0)
                    throw new InvalidOperationException($"the session's last checkpoint ({ck.Folder}) trained the text encoder as {wasTe} but the options ask for "
                        + $"{options.TextEncoderTraining}: its optimizer state does not fit. Resume with TextEncoderTraining {wasTe} or start over without resuming (train --no-resume).");
                RestoreWeights(ck.Weights, unet, te, lora);
                optimizer.LoadStateDict(ck.OptimizerState);
                if (ck.RngState.TryGetValue("generator", out var g)) gen.set_state(g);
                step = ck.Info.Step;
                teDone = ck.Info.TextEncoderStepsDone;
                samples = ck.Info.SamplesSeen;
                lastCheckpoint = ck.Folder;
            }
            Report("resume", step, message: $"resumed from {lastCheckpoint} at step {step}");
        }
        if (step >= options.UnetSteps)
            return new TrainingResult(step, lastCheckpoint, false, null, [], []);

        var run = new TrainingRunRecord(DateTime.UtcNow, null, step, options.UnetSteps, "running");
        Session.Update(f => f with { Progress = f.Progress with { Runs = [.. f.Progress.Runs, run] } });

        // 5. train
        var history = new List<TrainingStepRecord>();
        var samplesWritten = new List<string>();
        var metricsPath = Path.Combine(Session.Folder, "metrics.jsonl");
        Tensor? cachedContext = null;
        string? stopped = null;
        bool cancelled = false;
        var nonFiniteSteps = new NonFiniteSteps(options.MaxNonFiniteStepsInARow);
        unet.train();
        var instanceExamples = data.Instances;
        try
        {
            while (step < options.UnetSteps)
            {
                if (cancellationToken.IsCancellationRequested) { cancelled = true; break; }
                var sw = Stopwatch.StartNew();
                bool teActive = teParams.Count > 0 && teDone < options.TextEncoderSteps;
                foreach (var p in teParams) p.requires_grad = teActive;
                if (teActive) te.train(); else te.eval();
                if (!teActive && cachedContext is null) cachedContext = EncodeAll(data);

                double lossSum = 0, instSum = 0, priorSum = 0;
                bool hasPrior = false;
                string? nonFinite = null;
                for (int micro = 0; micro < options.GradientAccumulationSteps; micro++)
                {
                    using var scope = torch.NewDisposeScope();
                    var batch = new List<TrainingExample>();
                    var batchIdx = new List<int>();
                    for (int b = 0; b < options.BatchSize; b++)
                    {
                        int i = DataOrder.InstanceIndex(options.Seed, samples + b, instanceExamples.Count);
                        batch.Add(instanceExamples[i]);
                        batchIdx.Add(i);
                    }
                    int instanceCount = batch.Count;
                    var classIdx = new List<int>();
                    if (options.PriorPreservation)
                        for (int b = 0; b < instanceCount; b++)
                        {
                            var pool = data.Classes[batch[b].Concept];
                            if (pool.Count == 0) continue;
                            int ci = DataOrder.ClassIndex(options.Seed, samples + b, pool.Count);
                            batch.Add(pool[ci]);
                            classIdx.Add(ci);
                        }
                    samples += instanceCount;

                    var mean = torch.cat(batch.Select(e => e.Mean).ToList(), 0);
                    var std = torch.cat(batch.Select(e => e.Std).ToList(), 0);
                    var eps = torch.randn(mean.shape, dtype: ScalarType.Float32, generator: gen);
                    var latents = mean.Plus(std * eps).Times(Model.Vae.Config.ScalingFactor);
                    var noise = torch.randn(latents.shape, dtype: ScalarType.Float32, generator: gen);
                    if (options.OffsetNoise > 0) noise = OffsetNoise.Apply(noise, options.OffsetNoise, gen);
                    var timesteps = options.TimestepBias.Sample(schedule.NumTrainTimesteps, latents.shape[0], gen);
                    Tensor context;
                    if (teActive)
                    {
                        var ids = torch.tensor(batch.SelectMany(e => e.InputIds).ToArray(), dtype: ScalarType.Int64).view(batch.Count, -1).to(Model.Device);
                        context = te.Forward(ids).LastHiddenState;
                    }
                    else
                    {
                        var rows = batchIdx.Concat(classIdx.Select((ci, k) => instanceExamples.Count + ClassOffset(data, batch[instanceCount + k].Concept) + ci)).ToArray();
                        context = cachedContext!.index_select(0, torch.tensor(rows.Select(r => (long)r).ToArray()).to(cachedContext!.device));
                    }
                    var dev = Model.Device;
                    var pixelWeights = options.MaskedLoss && batch.Take(instanceCount).Any(e => e.Mask is not null)
                        ? torch.cat(batch.Take(instanceCount).Select(e => e.Mask is { } m ? MaskFiles.Weights(m, options.UnmaskedWeight) : torch.ones(1, 1, latents.shape[2], latents.shape[3])).ToList(), 0)
                        : null;
                    var r = DreamBoothLoss.Compute(unet, schedule, latents.to(dev), noise.to(dev), timesteps.to(dev), context, instanceCount,
                        options.PriorLossWeight, options.MinSnrGamma, pixelWeights);
                    double lossValue = r.Loss.item<float>();
                    if (!double.IsFinite(lossValue))
                    {
                        nonFinite = $"the loss became {lossValue}";
                        break;
                    }
                    r.Loss.Over(options.GradientAccumulationSteps).backward();
                    AfterBackward?.Invoke(step + 1);
                    lossSum += lossValue;
                    instSum += r.InstanceLoss.item<float>();
                    if (r.PriorLoss is not null) { priorSum += r.PriorLoss.item<float>(); hasPrior = true; }
                }
                if (teActive) identifierRows?.MaskGradient();
                var trained = unetParams.Concat(teActive ? teParams : []);
                double gradNorm = nonFinite is not null ? double.NaN
                    : options.MaxGradNorm > 0 ? GradClip.ClipGradNorm(trained, options.MaxGradNorm) : GradClip.TotalNorm(trained);
                if (nonFinite is null && !double.IsFinite(gradNorm)) nonFinite = $"the gradient norm became {gradNorm}";
                if (nonFinite is not null)
                {
                    // discard the batch (no update), as GradScaler does; only a run of them means the weights diverged
                    optimizer.ZeroGrad();
                    if (!nonFiniteSteps.Discard())
                    {
                        stopped = $"{nonFinite} at step {step + 1}{(nonFiniteSteps.InARow > 1 ? $" ({nonFiniteSteps.InARow} batches in a row)" : "")}: training stopped and no checkpoint was written from it. "
                                + $"The last good checkpoint is {lastCheckpoint ?? "(none yet)"}. Lower the learning rate (UnetLearningRate {options.UnetLearningRate}) or train in fp32.";
                        break;
                    }
                    Report("discarded", step, message: $"{nonFinite} at step {step + 1}: batch discarded, no update ({nonFiniteSteps.Discarded} so far)");
                    nonFinite = null;
                    continue;
                }
                nonFiniteSteps.Good();
                double multiplier = LrSchedule.Multiplier(lrOptions, step);
                optimizer.SetLearningRateMultiplier(multiplier);
                optimizer.Step();
                optimizer.ZeroGrad();
                if (teActive) identifierRows?.RestoreOtherRows();
                step++;
                if (teActive) teDone++;
                int n = options.GradientAccumulationSteps;
                var rec = new TrainingStepRecord(step, lossSum / n, instSum / n, hasPrior ? priorSum / n : null,
                    options.UnetLearningRate * multiplier, teActive ? options.TextEncoderLearningRate * multiplier : null, gradNorm, sw.Elapsed.TotalSeconds);
                history.Add(rec);
                File.AppendAllText(metricsPath, JsonSerializer.Serialize(rec, DreamBoothSession.JsonOptions).ReplaceLineEndings(" ") + "\n");
                Report("training", step, rec);

                bool last = step == options.UnetSteps;
                if (options.ValidationEvery > 0 && (step % options.ValidationEvery == 0 || last))
                {
                    samplesWritten.AddRange(Validate(step, options));
                    unet.train();
                    Report("validation", step, rec, $"samples for step {step} written");
                }
                if (last || (options.CheckpointEvery > 0 && step % options.CheckpointEvery == 0) || cancellationToken.IsCancellationRequested)
                {
                    lastCheckpoint = SaveCheckpoint(step, teDone, samples, rec.Loss, unet, te, optimizer, gen, lora, teParams.Count > 0);
                    Report("checkpoint", step, rec, $"checkpoint written: {lastCheckpoint}");
                }
            }
            if (cancelled && (lastCheckpoint is null || !lastCheckpoint.EndsWith(CheckpointStore.FolderName(step), StringComparison.Ordinal)) && step > 0)
                lastCheckpoint = SaveCheckpoint(step, teDone, samples, history.LastOrDefault()?.Loss, unet, te, optimizer, gen, lora, teParams.Count > 0);
        }
        finally
        {
            cachedContext?.Dispose();
            unet.eval();
            te.eval();
            unet.GradientCheckpointing = false;
            var status = stopped is not null ? "stopped" : cancelled ? "cancelled" : "completed";
            Session.Update(f => f with
            {
                Progress = f.Progress with
                {
                    Runs = [.. f.Progress.Runs.Take(f.Progress.Runs.Count - 1), run with { Finished = DateTime.UtcNow, ToStep = step, Status = status, Note = stopped }],
                },
            });
        }
        return new TrainingResult(step, lastCheckpoint, cancelled, stopped, history, samplesWritten) { DiscardedSteps = nonFiniteSteps.Discarded };
    }

    static int ClassOffset(TrainingData data, int concept) => data.Classes.Take(concept).Sum(c => c.Count);

    /// <summary>Text embeddings of every instance caption, then every class caption (concept order), computed once.</summary>
    Tensor EncodeAll(TrainingData data)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var all = data.Instances.Concat(data.Classes.SelectMany(c => c)).ToList();
        var ids = torch.tensor(all.SelectMany(e => e.InputIds).ToArray(), dtype: ScalarType.Int64).view(all.Count, -1).to(Model.Device);
        var parts = new List<Tensor>();
        for (int i = 0; i < all.Count; i += 16)
            parts.Add(Model.TextEncoder.Forward(ids[i..Math.Min(all.Count, i + 16)]).LastHiddenState);
        return torch.cat(parts, 0).MoveToOuterDisposeScope();
    }

    string SaveCheckpoint(int step, int teDone, long samples, double? loss, nn.Module unet, nn.Module te, ITrainingOptimizer optimizer,
        Generator gen, bool lora, bool teTrained)
    {
        using var scope = torch.NewDisposeScope();
        var weights = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        if (lora)
        {
            foreach (var (path, a) in UnetLora!.Adapters) { weights[$"unet.{path}.lora_down"] = a.Down.detach(); weights[$"unet.{path}.lora_up"] = a.Up.detach(); }
            if (TextEncoderLora is not null)
                foreach (var (path, a) in TextEncoderLora.Adapters) { weights[$"text_encoder.{path}.lora_down"] = a.Down.detach(); weights[$"text_encoder.{path}.lora_up"] = a.Up.detach(); }
        }
        else
        {
            foreach (var (k, v) in unet.state_dict()) weights["unet." + k] = v;
            if (teTrained) foreach (var (k, v) in te.state_dict()) weights["text_encoder." + k] = v;
        }
        var opt = optimizer.StateDict();
        var rng = new Dictionary<string, Tensor> { ["generator"] = gen.get_state() };
        var info = new CheckpointInfo
        {
            Step = step,
            TextEncoderStepsDone = teDone,
            SamplesSeen = samples,
            Options = Session.File.Options,
            BaseModel = Session.File.BaseModel,
            Kind = lora ? "lora" : "full",
            LastLoss = loss,
        };
        string folder;
        try
        {
            folder = CheckpointStore.Write(Session.CheckpointsFolder, info, weights, opt, rng, Session.File.Options.KeepCheckpoints);
        }
        finally
        {
            foreach (var t in opt.Values) t.Dispose();
        }
        var rel = Path.GetRelativePath(Session.Folder, folder);
        Session.Update(f => f with { Progress = f.Progress with { Step = step, LastCheckpoint = rel } });
        CheckpointWritten?.Invoke(folder);
        return folder;
    }

    void RestoreWeights(Dictionary<string, Tensor> weights, nn.Module unet, nn.Module te, bool lora)
    {
        using var _ = torch.no_grad();
        if (lora)
        {
            foreach (var (net, prefix) in new[] { (UnetLora, "unet."), (TextEncoderLora, "text_encoder.") })
            {
                if (net is null) continue;
                foreach (var (path, a) in net.Adapters)
                {
                    a.Down.copy_(weights[$"{prefix}{path}.lora_down"]);
                    a.Up.copy_(weights[$"{prefix}{path}.lora_up"]);
                }
            }
            return;
        }
        var u = weights.Where(kv => kv.Key.StartsWith("unet.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[5..], kv => kv.Value);
        StateDicts.LoadStrict(unet, u, "checkpoint weights (unet)");
        var t = weights.Where(kv => kv.Key.StartsWith("text_encoder.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key[13..], kv => kv.Value);
        if (t.Count > 0) StateDicts.LoadStrict(te, t, "checkpoint weights (text_encoder)");
    }

    IReadOnlyList<string> Validate(int step, TrainingOptions options)
    {
        var prompts = options.ValidationPrompts.Count > 0 ? options.ValidationPrompts
            : Session.File.Concepts.SelectMany(c => new[] { c.EffectiveInstancePrompt, c.EffectiveClassPrompt }).ToList();
        var folder = Path.Combine(Session.SamplesFolder, CheckpointStore.FolderName(step));
        Directory.CreateDirectory(folder);
        var pipeline = new StableDiffusionPipeline(Model);
        var written = new List<string>();
        Model.Unet.eval();
        for (int i = 0; i < prompts.Count; i++)
        {
            using var result = pipeline.Generate(new GenerationRequest
            {
                Prompt = prompts[i],
                Width = options.Resolution,
                Height = options.Resolution,
                Steps = options.ValidationSteps,
                Sampler = Sampler.DpmPP2M,
                GuidanceScale = 7.5,
                Seed = options.ValidationSeed,
            });
            var path = Path.Combine(folder, $"{i:D2}.png");
            using (var img = result.ToImages()[0]) PngInfo.Save(img, path, result.Parameters[0]);
            written.Add(path);
        }
        return written;
    }

    void DisposeLora()
    {
        UnetLora?.Dispose();
        TextEncoderLora?.Dispose();
        UnetLora = null;
        TextEncoderLora = null;
    }
}

/// <summary>
/// An IProgress that calls back synchronously on the computing thread. <see cref="Progress{T}"/> would post to the thread
/// pool, whose allocations could then trigger a garbage collection while libtorch is mid-call (<see cref="HeldScalars"/>).
/// </summary>
public sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
