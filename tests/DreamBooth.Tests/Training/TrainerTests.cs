using DreamBooth.Loading;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Training;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;

namespace DreamBooth.Tests.Training;

/// <summary>DreamBooth training on the tiny SD 1.x fixture model (random weights, 64×64 images, a few steps).</summary>
[Collection(DreamBooth.Tests.Infrastructure.CustomAutogradCollection.Name)]
public class TrainerTests
{
    internal static readonly Concept Subject = new() { Name = "zwx", Identifier = "zwx", ClassNoun = "dog" };

    public static TrainingOptions Tiny(int steps = 4) => new()
    {
        Resolution = 64,
        UnetSteps = steps,
        UnetLearningRate = 1e-3,
        TextEncoderSteps = 2,
        TextEncoderLearningRate = 5e-4,
        NumClassImages = 2,
        ClassImageSteps = 2,
        CheckpointEvery = 2,
        KeepCheckpoints = 5,
        Seed = 7,
    };

    public static DreamBoothSession NewSession(string folder, TrainingOptions options)
    {
        var s = DreamBoothSession.Create(folder, TestPaths.ParityPath("single-file", "tiny-sd1", "diffusers"), [Subject], options);
        for (int i = 0; i < 3; i++)
        {
            using var img = new Image<Rgb24>(64, 64);
            for (int y = 0; y < 64; y++)
                for (int x = 0; x < 64; x++)
                    img[x, y] = new Rgb24((byte)(x * 4 * (i + 1)), (byte)(y * 4), (byte)((x + y) * 2 + 40 * i));
            img.SaveAsPng(Path.Combine(s.InstanceFolder(Subject), $"zwx ({i + 1}).png"));
        }
        return s;
    }

    /// <summary>A new session trained with <paramref name="options"/> and cancelled after <paramref name="step"/>, reloaded from disk.</summary>
    static DreamBoothSession NewSessionStoppedAfter(string folder, TrainingOptions options, int step)
    {
        var session = NewSession(folder, options);
        using var cts = new CancellationTokenSource();
        using (var model = LoadModel())
            Assert.True(new DreamBoothTrainer(session, model).Train(new InlineProgress<TrainingProgress>(p => { if (p.Phase == "training" && p.Step == step) cts.Cancel(); }), cts.Token).Cancelled);
        return DreamBoothSession.Load(session.Folder);
    }

    public static StableDiffusionModel LoadModel() => StableDiffusionModel.FromPretrained(TestPaths.ParityPath("single-file", "tiny-sd1", "diffusers"));

    static Dictionary<string, torch.Tensor> Weights(StableDiffusionModel m) =>
        m.Unet.state_dict().Select(kv => ("unet." + kv.Key, kv.Value.clone()))
            .Concat(m.TextEncoder.state_dict().Select(kv => ("te." + kv.Key, kv.Value.clone())))
            .ToDictionary(x => x.Item1, x => x.Item2);

    [Fact]
    public void StoppingAndResumingGivesBitIdenticalWeights()
    {
        using var dir = TestPaths.NewTempDir();
        torch.set_num_threads(1);

        // one go
        var a = NewSession(Path.Combine(dir.Path, "a"), Tiny());
        using var ma = LoadModel();
        var ra = new DreamBoothTrainer(a, ma).Train();
        Assert.True(ra.Completed);
        Assert.Equal(4, ra.Step);
        Assert.Equal(2, Directory.GetFiles(a.ClassFolder(Subject), "*.png").Length);
        var wa = Weights(ma);

        // stop after step 2 (cancellation), then resume in a fresh process-like state (new model, new trainer)
        var b = NewSession(Path.Combine(dir.Path, "b"), Tiny());
        using var cts = new CancellationTokenSource();
        using (var mb = LoadModel())
        {
            var rb = new DreamBoothTrainer(b, mb).Train(new InlineProgress<TrainingProgress>(p => { if (p.Phase == "training" && p.Step == 2) cts.Cancel(); }), cts.Token);
            Assert.True(rb.Cancelled);
            Assert.Equal(2, rb.Step);
        }
        Assert.Equal([2], CheckpointStore.List(b.CheckpointsFolder).Select(c => c.Step));
        using var mb2 = LoadModel();
        var rb2 = new DreamBoothTrainer(DreamBoothSession.Load(b.Folder), mb2).Train();
        Assert.True(rb2.Completed);
        Assert.Equal(4, rb2.Step);
        var wb = Weights(mb2);
        foreach (var (k, v) in wa)
            Assert.True(TensorAssert.BitEqual(v, wb[k]), $"{k} differs after resume");
        // the run changed the weights, the text encoder too (it trains for its first 2 steps)
        using var base_ = LoadModel();
        Assert.False(TensorAssert.BitEqual(base_.Unet.state_dict()["conv_in.weight"], ma.Unet.state_dict()["conv_in.weight"]));
        Assert.False(TensorAssert.BitEqual(base_.TextEncoder.state_dict()["text_model.final_layer_norm.weight"], ma.TextEncoder.state_dict()["text_model.final_layer_norm.weight"]));
        var session = DreamBoothSession.Load(b.Folder);
        Assert.Equal(4, session.File.Progress.Step);
        Assert.Equal(["cancelled", "completed"], session.File.Progress.Runs.Select(r => r.Status));
        Assert.True(File.ReadAllLines(Path.Combine(b.Folder, "metrics.jsonl")).Length >= 4);
    }

    [Fact]
    public void BlockLearningRatesFreezeAPartTrainTheOthersAndResumeBitIdentically()
    {
        using var dir = TestPaths.NewTempDir();
        torch.set_num_threads(1);
        var options = Tiny() with { UnetBlockLearningRates = new UnetBlockLearningRates { Down = 0, Mid = 0.5, Up = 1 } };

        var a = NewSession(Path.Combine(dir.Path, "a"), options);
        using var ma = LoadModel();
        Assert.True(new DreamBoothTrainer(a, ma).Train().Completed);
        using var base_ = LoadModel();
        var before = base_.Unet.state_dict();
        var after = ma.Unet.state_dict();
        foreach (var (k, v) in before.Where(kv => UnetBlockLearningRates.PartOf(kv.Key) == "down"))
            Assert.True(TensorAssert.BitEqual(v, after[k]), $"{k} is in the frozen part (down, multiplier 0) but changed");
        Assert.Contains(before, kv => kv.Key.StartsWith("conv_in.", StringComparison.Ordinal));
        foreach (var part in new[] { "mid", "up" })
            Assert.True(before.Any(kv => UnetBlockLearningRates.PartOf(kv.Key) == part && !TensorAssert.BitEqual(kv.Value, after[kv.Key])), $"no {part} weight changed");

        // stopped after step 2 and resumed from the session (its options, three UNet groups and their optimizer state)
        var loaded = NewSessionStoppedAfter(Path.Combine(dir.Path, "b"), options, 2);
        Assert.Equal(options.UnetBlockLearningRates, loaded.File.Options.UnetBlockLearningRates);
        using var mb2 = LoadModel();
        Assert.True(new DreamBoothTrainer(loaded, mb2).Train().Completed);
        foreach (var (k, v) in after)
            Assert.True(TensorAssert.BitEqual(v, mb2.Unet.state_dict()[k]), $"{k} differs after resume");

        // resuming with other parts frozen is refused with the fix; other non-zero multipliers resume
        loaded.Update(f => f with { Options = f.Options with { UnetSteps = 6, UnetBlockLearningRates = new() } });
        using var mb3 = LoadModel();
        var e = Assert.Throws<InvalidOperationException>(() => new DreamBoothTrainer(loaded, mb3).Train());
        Assert.Contains("UNet block learning rates 0,0.5,1", e.Message);
        Assert.Contains("--no-resume", e.Message);
        loaded.Update(f => f with { Options = f.Options with { UnetBlockLearningRates = new() { Down = 0, Mid = 2, Up = 0.5 } } });
        Assert.Equal(6, new DreamBoothTrainer(loaded, mb3).Train().Step);
    }

    [Fact]
    public void IdentifierEmbeddingTrainingChangesOnlyTheIdentifierRowsAndResumesBitIdentically()
    {
        using var dir = TestPaths.NewTempDir();
        torch.set_num_threads(1);
        var options = Tiny() with { TextEncoderTraining = TextEncoderTraining.IdentifierEmbeddings, TextEncoderLearningRate = 1e-2 };

        var a = NewSession(Path.Combine(dir.Path, "a"), options);
        using var ma = LoadModel();
        Assert.True(new DreamBoothTrainer(a, ma).Train().Completed);
        using var base_ = LoadModel();
        var ids = ma.Tokenizer.Encode(Subject.Identifier);
        Assert.NotEmpty(ids);
        var before = base_.TextEncoder.state_dict();
        var after = ma.TextEncoder.state_dict();
        var embeddingKey = before.Keys.Single(k => k.EndsWith("token_embedding.weight", StringComparison.Ordinal));
        foreach (var (k, v) in before.Where(kv => kv.Key != embeddingKey))
            Assert.True(TensorAssert.BitEqual(v, after[k]), $"{k} is not the token embedding but changed");
        var b0 = before[embeddingKey];
        var a0 = after[embeddingKey];
        using var sameRows = b0.eq(a0).all(1);
        var same = sameRows.data<bool>().ToArray();
        for (int row = 0; row < same.Length; row++)
            if (ids.Contains(row)) Assert.False(same[row], $"identifier token {row} ({ma.Tokenizer.IdToToken(row)}) was not trained");
            else Assert.True(same[row], $"token {row} ({ma.Tokenizer.IdToToken(row)}) is not the identifier's but its embedding changed");
        Assert.False(TensorAssert.BitEqual(base_.Unet.state_dict()["conv_in.weight"], ma.Unet.state_dict()["conv_in.weight"]));

        // stopped after step 1 (inside the text-encoder phase) and resumed: the same weights
        var loaded = NewSessionStoppedAfter(Path.Combine(dir.Path, "b"), options, 1);
        Assert.Equal(TextEncoderTraining.IdentifierEmbeddings, loaded.File.Options.TextEncoderTraining);
        using var mb2 = LoadModel();
        Assert.True(new DreamBoothTrainer(loaded, mb2).Train().Completed);
        foreach (var (k, v) in after)
            Assert.True(TensorAssert.BitEqual(v, mb2.TextEncoder.state_dict()[k]), $"text encoder {k} differs after resume");
        foreach (var (k, v) in ma.Unet.state_dict())
            Assert.True(TensorAssert.BitEqual(v, mb2.Unet.state_dict()[k]), $"unet {k} differs after resume");

        // resuming as full text-encoder training is refused with the fix (its optimizer state is the embedding's alone)
        loaded.Update(f => f with { Options = f.Options with { UnetSteps = 6, TextEncoderTraining = TextEncoderTraining.Full } });
        using var mb3 = LoadModel();
        var e = Assert.Throws<InvalidOperationException>(() => new DreamBoothTrainer(loaded, mb3).Train());
        Assert.Contains("trained the text encoder as IdentifierEmbeddings", e.Message);
        Assert.Contains("--no-resume", e.Message);

        // with LoRA it is refused naming the option
        var lora = Assert.Throws<ArgumentException>(() => (options with { Lora = new LoraOptions() }).Validate());
        Assert.Equal(nameof(TrainingOptions.TextEncoderTraining), lora.ParamName);
    }

    [Theory]
    [InlineData("0,1,1", 0, 1, 1)]
    [InlineData(" 0.25 , 0.5,2 ", 0.25, 0.5, 2)]
    public void BlockLearningRatesParse(string text, double down, double mid, double up)
    {
        var r = UnetBlockLearningRates.Parse(text);
        Assert.Equal(new UnetBlockLearningRates { Down = down, Mid = mid, Up = up }, r);
        Assert.Equal(r, UnetBlockLearningRates.Parse(r.ToString()));
    }

    [Theory]
    [InlineData("1,1", "three numbers")]
    [InlineData("a,1,1", "three numbers")]
    [InlineData("-1,1,1", "Down: must be a finite number ≥ 0")]
    [InlineData("1,NaN,1", "Mid: must be a finite number ≥ 0")]
    [InlineData("0,0,0", "all three parts are frozen")]
    public void BadBlockLearningRatesAreRefusedWithTheFix(string text, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => UnetBlockLearningRates.Parse(text));
        Assert.Contains(expected, e.Message);
        Assert.Contains("UnetBlockLearningRates", e.Message);
    }

    [Fact]
    public void BlockLearningRatesAreForFullFineTuning()
    {
        var o = Tiny() with { Lora = new LoraOptions(), UnetBlockLearningRates = new UnetBlockLearningRates { Down = 0 } };
        var e = Assert.Throws<ArgumentException>(o.Validate);
        Assert.Contains("with LoRA leave them at 1 / 1 / 1", e.Message);
        (o with { UnetBlockLearningRates = new() }).Validate();
    }

    [Theory]
    [InlineData("conv_in.weight", "down")]
    [InlineData("time_embedding.linear_1.weight", "down")]
    [InlineData("down_blocks.1.attentions.0.proj_in.weight", "down")]
    [InlineData("mid_block.resnets.0.conv1.weight", "mid")]
    [InlineData("up_blocks.0.resnets.2.conv2.bias", "up")]
    [InlineData("conv_norm_out.weight", "up")]
    [InlineData("conv_out.bias", "up")]
    public void UnetParametersBelongToTheirPart(string name, string part) => Assert.Equal(part, UnetBlockLearningRates.PartOf(name));

    [Fact]
    public void ALoneNonFiniteGradientIsDiscardedAndARunOfThemStops()
    {
        using var dir = TestPaths.NewTempDir();
        // one poisoned backward pass (the oneDNN glitch TrainingOptions.MaxNonFiniteStepsInARow describes): discarded, run completes
        var s = NewSession(Path.Combine(dir.Path, "s"), Tiny(4) with { PriorPreservation = false, CheckpointEvery = 0 });
        using var m = LoadModel();
        var poisonedOnce = false;
        var trainer = new DreamBoothTrainer(s, m)
        {
            AfterBackward = step =>
            {
                if (step != 2 || poisonedOnce) return;
                poisonedOnce = true;
                using var noGrad = torch.no_grad();
                m.Unet.state_dict()["conv_in.weight"].grad!.fill_(float.NaN);
            },
        };
        var messages = new List<string>();
        var r = trainer.Train(new InlineProgress<TrainingProgress>(p => { if (p.Message is { } msg) messages.Add(msg); }));
        Assert.True(r.Completed, r.StoppedReason);
        Assert.Equal(4, r.Step);
        Assert.Equal(1, r.DiscardedSteps);
        Assert.Equal(4, r.History.Count);
        Assert.All(r.History, h => Assert.True(double.IsFinite(h.GradNorm)));
        Assert.Contains(messages, msg => msg.Contains("gradient norm became NaN at step 2: batch discarded", StringComparison.Ordinal));
        Assert.True(m.Unet.parameters().All(p => torch.isfinite(p).all().item<bool>()), "a discarded batch must not touch the weights");

        // every backward poisoned: stops after MaxNonFiniteStepsInARow + 1 batches, names the step
        var s2 = NewSession(Path.Combine(dir.Path, "s2"), Tiny(4) with { PriorPreservation = false, CheckpointEvery = 0, MaxNonFiniteStepsInARow = 2 });
        using var m2 = LoadModel();
        var tries = 0;
        var r2 = new DreamBoothTrainer(s2, m2)
        {
            AfterBackward = step =>
            {
                if (step < 3) return;
                tries++;
                using var noGrad = torch.no_grad();
                m2.Unet.state_dict()["conv_in.weight"].grad!.fill_(float.PositiveInfinity);
            },
        }.Train();
        Assert.False(r2.Completed);
        Assert.Equal(2, r2.Step);
        Assert.Equal(3, tries);
        Assert.Equal(3, r2.DiscardedSteps);
        Assert.Contains("the gradient norm became", r2.StoppedReason);
        Assert.Contains("at step 3 (3 batches in a row): training stopped", r2.StoppedReason);
    }

    [Fact]
    public void NanLossStopsWithAClearMessageAndKeepsTheLastGoodCheckpoint()
    {
        using var dir = TestPaths.NewTempDir();
        var s = NewSession(Path.Combine(dir.Path, "s"), Tiny(2) with { PriorPreservation = false });
        using (var m = LoadModel())
            Assert.True(new DreamBoothTrainer(s, m).Train().Completed);
        s.Update(f => f with { Options = f.Options with { UnetSteps = 4 } });
        using var poisoned = LoadModel();
        using (torch.no_grad()) poisoned.Vae.state_dict()["encoder.conv_in.weight"].fill_(float.NaN);
        var r = new DreamBoothTrainer(s, poisoned).Train();
        Assert.NotNull(r.StoppedReason);
        Assert.Contains("the loss became NaN at step 3", r.StoppedReason);
        Assert.Contains("step-000002", r.StoppedReason);
        Assert.Equal([2], CheckpointStore.List(s.CheckpointsFolder).Select(c => c.Step));
    }

    [Fact]
    public void LoraBf16EightBitAndCheckpointingRun()
    {
        using var dir = TestPaths.NewTempDir();
        var opts = Tiny(3) with
        {
            Lora = new LoraOptions { Rank = 2, Alpha = 2, TrainTextEncoder = true },
            Precision = TrainingPrecision.Bf16,
            Optimizer = OptimizerKind.AdamW8bit,
            GradientCheckpointing = true,
            MinSnrGamma = 5,
            OffsetNoise = 0.05,
            UnetLearningRate = 1e-2,
            ValidationEvery = 3,
            ValidationSteps = 2,
            CheckpointEvery = 0,
        };
        var s = NewSession(Path.Combine(dir.Path, "s"), opts);
        using var m = LoadModel();
        var before = m.Unet.state_dict()["conv_in.weight"].clone();
        var trainer = new DreamBoothTrainer(s, m);
        var r = trainer.Train();
        Assert.True(r.Completed, r.StoppedReason);
        Assert.Equal(3, r.History.Count);
        Assert.All(r.History, h => Assert.True(double.IsFinite(h.Loss)));
        Assert.Equal(torch.ScalarType.BFloat16, m.Unet.DType);
        // LoRA leaves the base weights alone and trains adapters
        Assert.True(TensorAssert.BitEqual(before.to(torch.ScalarType.BFloat16), m.Unet.state_dict()["conv_in.weight"]));
        Assert.Contains(trainer.UnetLora!.Adapters, a => a.Adapter.Up.abs().sum().to(torch.ScalarType.Float32).item<float>() > 0);
        Assert.Equal(2, r.Samples.Count); // instance + class prompt at the last step
        var ck = CheckpointStore.LoadLatest(s.CheckpointsFolder)!;
        using (ck) Assert.Equal("lora", ck.Info.Kind);
    }

    [Fact]
    public void CaptionedPriorPreservationGeneratesEachClassImageFromAnInstanceCaptionWithoutTheIdentifier()
    {
        using var dir = TestPaths.NewTempDir();
        var s = NewSession(Path.Combine(dir.Path, "s"), Tiny() with { PriorPreservation = true, NumClassImages = 4, ClassImageSteps = 1, ClassPromptsFromCaptions = true });
        var images = s.InstanceImages(Subject);
        File.WriteAllText(Path.ChangeExtension(images[0], ".txt"), "a zwx dog on a red sofa, zwx.\n");
        File.WriteAllText(Path.ChangeExtension(images[1], ".txt"), "zwx dog in the snow");
        // the third image has no caption: the instance prompt ("zwx dog") minus the identifier
        Assert.Equal(["a dog on a red sofa,", "dog in the snow", "dog"], ClassImages.Prompts(s, Subject));
        using var model = LoadModel();
        Assert.Equal(4, ClassImages.EnsureGenerated(s, model));
        var captions = Enumerable.Range(0, 4).Select(i => File.ReadAllText(Path.ChangeExtension(Path.Combine(s.ClassFolder(Subject), ClassImages.FileName(i)), ".txt")).Trim()).ToArray();
        Assert.Equal(["a dog on a red sofa,", "dog in the snow", "dog", "a dog on a red sofa,"], captions);
        // training reads them back as the class images' captions
        using var data = TrainingData.Load(s, model.Vae, model.Tokenizer, priorPreservation: true);
        Assert.Equal(captions, data.Classes[0].Select(e => e.Caption).ToArray());

        // off (the default): one class prompt, no sidecars
        var plain = NewSession(Path.Combine(dir.Path, "p"), Tiny() with { PriorPreservation = true, NumClassImages = 2, ClassImageSteps = 1 });
        Assert.Equal(["a dog"], ClassImages.Prompts(plain, Subject));
        ClassImages.EnsureGenerated(plain, model);
        Assert.Empty(Directory.GetFiles(plain.ClassFolder(Subject), "*.txt"));
        Assert.Equal("a dog on a sofa", ClassImages.WithoutIdentifier("a zwx dog on a sofa", "zwx"));
        Assert.Equal("a zwxy dog", ClassImages.WithoutIdentifier("a zwxy dog", "zwx"));
    }

    [Fact]
    public void ClassImagesGeneratedInBatchesMatchThoseGeneratedOneAtATime()
    {
        using var dir = TestPaths.NewTempDir();
        using var model = LoadModel();
        var opts = Tiny() with { PriorPreservation = true, NumClassImages = 5, ClassImageSteps = 2 };
        var one = NewSession(Path.Combine(dir.Path, "one"), opts with { ClassImageBatchSize = 1 });
        var four = NewSession(Path.Combine(dir.Path, "four"), opts with { ClassImageBatchSize = 4 });
        var progress = new List<int>();
        Assert.Equal(5, ClassImages.EnsureGenerated(one, model));
        // one missing image in the middle of a batched run: only it is generated again, from its own seed
        Assert.Equal(5, ClassImages.EnsureGenerated(four, model, progress: new InlineProgress<ClassImageProgress>(p => progress.Add(p.Done))));
        Assert.Equal([1, 2, 3, 4, 5], progress);
        File.Delete(Path.Combine(four.ClassFolder(Subject), ClassImages.FileName(2)));
        Assert.Equal(1, ClassImages.EnsureGenerated(four, model));
        for (int i = 0; i < 5; i++)
        {
            using var a = Image.Load<Rgb24>(Path.Combine(one.ClassFolder(Subject), ClassImages.FileName(i)));
            using var b = Image.Load<Rgb24>(Path.Combine(four.ClassFolder(Subject), ClassImages.FileName(i)));
            int worst = 0;
            for (int y = 0; y < a.Height; y++)
                for (int x = 0; x < a.Width; x++)
                    worst = Math.Max(worst, Math.Max(Math.Abs(a[x, y].R - b[x, y].R), Math.Max(Math.Abs(a[x, y].G - b[x, y].G), Math.Abs(a[x, y].B - b[x, y].B))));
            Assert.True(worst <= 2, $"class image {i}: batched and single generation differ by {worst} levels");
        }
        // distinct seeds: not five copies of one image
        using (var first = Image.Load<Rgb24>(Path.Combine(four.ClassFolder(Subject), ClassImages.FileName(0))))
        using (var second = Image.Load<Rgb24>(Path.Combine(four.ClassFolder(Subject), ClassImages.FileName(1))))
        {
            bool differ = false;
            for (int y = 0; y < first.Height && !differ; y++)
                for (int x = 0; x < first.Width && !differ; x++)
                    differ = !first[x, y].Equals(second[x, y]);
            Assert.True(differ, "class images 1 and 2 are identical: the batch did not use one seed per image");
        }
        Assert.Throws<ArgumentException>(() => (opts with { ClassImageBatchSize = 0 }).Validate());
    }
}
