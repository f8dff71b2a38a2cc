using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using DreamBooth.Loading;
using DreamBooth.Models.Clip;
using DreamBooth.Models.Common;
using DreamBooth.Models.Unet;
using DreamBooth.Models.Vae;
using DreamBooth.Pipelines;
using DreamBooth.Sampling;
using DreamBooth.Text;
using DreamBooth.Training;
using DreamBooth.Training.Optim;
using TorchSharp;
using static TorchSharp.torch;
using AdamW = DreamBooth.Training.Optim.AdamW;

namespace DreamBooth.Cli.Commands;

/// <summary>
/// `dreambooth bench`: measured speed and memory on full-size Stable Diffusion 1.5 architectures with random weights
/// (configs from <c>../shared/parity/keys/sd15</c> or any folder with unet/vae/text_encoder configs). Each measurement
/// should run in its own process so that peak RSS (VmHWM) belongs to it alone; `bench/run.sh` runs them all that way.
/// </summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var what = new Argument<string>("what") { Description = "unet (seconds per denoising step), pipeline (overhead over bare UNet calls) or train-step." };
        var configs = new Option<string>("--configs") { Description = "Folder with unet/, vae/, text_encoder/ config.json files (SD 1.5 size).", DefaultValueFactory = _ => Path.Combine("..", "shared", "parity", "keys", "sd15") };
        var size = new Option<int>("--size") { Description = "Image size in pixels.", DefaultValueFactory = _ => 512 };
        var dtype = new Option<string>("--dtype") { Description = "fp32 or bf16 (unet / pipeline).", DefaultValueFactory = _ => "fp32" };
        var steps = new Option<int>("--steps") { Description = "Timed steps (after one warm-up).", DefaultValueFactory = _ => 3 };
        var variant = new Option<string>("--variant") { Description = "train-step: a = fp32 AdamW, b = bf16 + gradient checkpointing + 8-bit AdamW, c = LoRA rank 4.", DefaultValueFactory = _ => "a" };
        var threads = new Option<int?>("--threads") { Description = "libtorch threads (default: all cores)." };
        var cmd = new Command("bench", "Benchmarks on full-size SD 1.5 architectures with random weights (numbers for notes, not tests).") { what, configs, size, dtype, steps, variant, threads };
        cmd.SetAction(pr =>
        {
            if (pr.GetValue(threads) is int t) torch.set_num_threads(t);
            NativeEnvironment.ForModelOfSize(NativeEnvironment.LargeModelBytes); // SD-size models, built part by part here: as a loaded one would
            torch.manual_seed(0);
            var dir = pr.GetValue(configs)!;
            int px = pr.GetValue(size);
            int n = pr.GetValue(steps);
            var dt = pr.GetValue(dtype) == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
            var line = pr.GetValue(what) switch
            {
                "unet" => BenchUnet(dir, px, dt, n),
                "pipeline" => BenchPipeline(dir, px, dt, n),
                "train-step" => BenchTrainStep(dir, px, pr.GetValue(variant)!, n),
                var w => throw new CliException($"unknown benchmark '{w}': use unet, pipeline or train-step"),
            };
            Cli.Out.WriteLine(line + $" | threads {torch.get_num_threads()}" + (pr.GetValue(what) == "train-step" ? "" : $" | peak RSS {PeakRssGiB():F2} GiB"));
            return 0;
        });
        return cmd;
    }

    static UNet2DConditionModel Unet(string dir, ScalarType dt) =>
        new(ComponentLoader.ReadConfig<UNet2DConditionConfig>(Path.Combine(dir, "unet")).Config, new ModelPlacement(torch.CPU, dt));

    static string BenchUnet(string dir, int px, ScalarType dt, int n)
    {
        using var unet = Unet(dir, dt);
        unet.eval();
        using var _ = torch.no_grad();
        long latent = px / 8;
        using var x = torch.randn([2, 4, latent, latent], dtype: dt);
        using var c = torch.randn([2, 77, unet.Config.CrossAttentionDim], dtype: dt);
        using var t = torch.tensor(500L);
        var times = new List<double>();
        for (int i = 0; i <= n; i++)
        {
            using var scope = torch.NewDisposeScope();
            var sw = Stopwatch.StartNew();
            unet.Forward(x, t, c);
            if (i > 0) times.Add(sw.Elapsed.TotalSeconds);
        }
        return $"unet {px}x{px} {dt} batch 2 (CFG): {times.Average():F2} s/step (min {times.Min():F2}, n={n})";
    }

    static string BenchPipeline(string dir, int px, ScalarType dt, int n)
    {
        var unet = Unet(dir, dt);
        var vae = new AutoencoderKL(ComponentLoader.ReadConfig<AutoencoderKLConfig>(Path.Combine(dir, "vae")).Config, new ModelPlacement(torch.CPU, dt));
        var te = new ClipTextModel(ComponentLoader.ReadConfig<ClipTextConfig>(Path.Combine(dir, "text_encoder")).Config, new ModelPlacement(torch.CPU, dt));
        var tokDir = Path.Combine(dir, "..", "..", "tokenizer");
        var tok = ClipTokenizer.FromFolder(tokDir);
        using var model = new StableDiffusionModel(unet, vae, te, tok, SchedulerConfig.StableDiffusion with { ClassName = "PNDMScheduler" }, dir);
        model.Unet.eval(); model.Vae.eval(); model.TextEncoder.eval();
        var pipe = new StableDiffusionPipeline(model);
        double unetSeconds = 0;
        pipe.UnetOverride = (a, b, c) =>
        {
            var sw = Stopwatch.StartNew();
            var r = model.Unet.Forward(a, b, c);
            unetSeconds += sw.Elapsed.TotalSeconds;
            return r;
        };
        var request = new GenerationRequest { Prompt = "a photo of an astronaut riding a horse", Width = px, Height = px, Steps = n, Sampler = Sampler.Euler, Seed = 1 };
        double decodeSeconds = 0;
        var total = Stopwatch.StartNew();
        var progressClock = Stopwatch.StartNew();
        double loopSeconds = 0;
        using (var r = pipe.Generate(request, new InlineProgress<GenerationProgress>(p => { if (p.Step == p.TotalSteps) loopSeconds = progressClock.Elapsed.TotalSeconds; })))
            decodeSeconds = total.Elapsed.TotalSeconds - loopSeconds;
        double all = total.Elapsed.TotalSeconds;
        double overhead = loopSeconds - unetSeconds;
        return string.Create(CultureInfo.InvariantCulture,
            $"pipeline {px}x{px} {dt} {n} steps: total {all:F1} s = prompt+latents+denoise loop {loopSeconds:F1} s (UNet {unetSeconds:F1} s, other {overhead:F2} s = {100 * overhead / unetSeconds:F2}% of UNet) + decode {decodeSeconds:F1} s");
    }

    /// <summary>
    /// One DreamBooth step as <see cref="DreamBoothTrainer"/> runs it: the latents of 1 instance + 1 class image are
    /// encoded once before training (the trainer caches them), then each step runs the text encoder and the UNet
    /// forward/backward with prior loss, clipping and the optimizer. Variants: (a) fp32 + AdamW; (b) bf16 weights +
    /// gradient checkpointing + 8-bit AdamW (no fp32 master copy: stochastic rounding); (c) LoRA rank 4 on the UNet and
    /// text-encoder attention projections, adapters in fp32 on a frozen bf16 base with gradient checkpointing (what the
    /// trainer does for <c>Precision = Bf16</c> + <c>Lora</c>).
    /// </summary>
    static string BenchTrainStep(string dir, int px, string variant, int n)
    {
        if (variant is not ("a" or "b" or "c")) throw new CliException($"--variant '{variant}': use a (fp32 AdamW), b (bf16 + checkpointing + 8-bit AdamW) or c (LoRA rank 4)");
        bool lora = variant == "c";
        bool lowMem = variant != "a";
        var dt = lowMem ? ScalarType.BFloat16 : ScalarType.Float32;
        using var unet = Unet(dir, dt);
        using var te = new ClipTextModel(ComponentLoader.ReadConfig<ClipTextConfig>(Path.Combine(dir, "text_encoder")).Config, new ModelPlacement(torch.CPU, dt));
        using var vae = new AutoencoderKL(ComponentLoader.ReadConfig<AutoencoderKLConfig>(Path.Combine(dir, "vae")).Config, new ModelPlacement(torch.CPU, dt));
        foreach (var p in vae.parameters()) p.requires_grad = false;
        double loadPeak = PeakRssGiB();
        Tensor latents;
        using (torch.no_grad())
        using (var scope = torch.NewDisposeScope())
            latents = (vae.Encode(torch.rand(2, 3, px, px, dtype: dt) * 2 - 1).Mean.to(ScalarType.Float32) * 0.18215).MoveToOuterDisposeScope();
        using var _latents = latents;
        double encodePeak = PeakRssGiB();
        ResetPeakRss();
        List<TorchSharp.Modules.Parameter> trainable;
        LoraNetwork? ul = null, tl = null;
        if (lora)
        {
            foreach (var p in unet.parameters().Concat(te.parameters())) p.requires_grad = false;
            ul = LoraNetwork.Attach(unet, "unet", 4, 4);
            tl = LoraNetwork.Attach(te, "text_encoder", 4, 4);
            trainable = [.. ul.Parameters(), .. tl.Parameters()];
        }
        else trainable = [.. unet.parameters(), .. te.parameters()];
        unet.GradientCheckpointing = lowMem;
        unet.train(); te.train();
        using ITrainingOptimizer opt = variant == "b" ? new AdamW8bit([new ParameterGroup("all", trainable, 1e-6)]) : new AdamW([new ParameterGroup("all", trainable, lora ? 1e-4 : 1e-6)]);
        using var schedule = new NoiseSchedule(SchedulerConfig.StableDiffusion);
        var times = new List<double>();
        // peak RSS per phase of the step (the counter is reset after each phase)
        var phases = new[] { "forward", "backward", "clip", "optimizer" };
        var phasePeak = new double[phases.Length];
        double trainPeak = 0;
        void EndPhase(int k)
        {
            double peak = PeakRssGiB();
            phasePeak[k] = Math.Max(phasePeak[k], peak);
            trainPeak = Math.Max(trainPeak, peak);
            ResetPeakRss();
        }
        for (int i = 0; i <= n; i++)
        {
            using var scope = torch.NewDisposeScope();
            var sw = Stopwatch.StartNew();
            var ids = torch.randint(0, 49406, [2, 77]);
            var ctx = te.Forward(ids).LastHiddenState;
            var noise = torch.randn(latents.shape);
            var ts = torch.randint(0, 1000, [2]);
            var r = DreamBoothLoss.Compute(unet, schedule, latents, noise, ts, ctx, 1, 1.0);
            EndPhase(0);
            r.Loss.backward();
            EndPhase(1);
            GradClip.ClipGradNorm(trainable, 1.0);
            EndPhase(2);
            opt.Step();
            opt.ZeroGrad();
            EndPhase(3);
            if (i > 0) times.Add(sw.Elapsed.TotalSeconds);
        }
        ul?.Dispose(); tl?.Dispose();
        string name = variant switch
        {
            "a" => "(a) fp32 AdamW",
            "b" => "(b) bf16 + gradient checkpointing + 8-bit AdamW",
            _ => "(c) LoRA rank 4 (fp32 adapters, frozen bf16 base, gradient checkpointing)",
        };
        return string.Create(CultureInfo.InvariantCulture,
            $"train-step {name} {px}x{px}, 1 instance + 1 class, UNet + text encoder: {times.Average():F1} s/step (n={n}), optimizer state {opt.StateBytes / (double)(1L << 30):F2} GiB, peak RSS while loading {loadPeak:F2} GiB, after encoding the latents {encodePeak:F2} GiB, during training steps {trainPeak:F2} GiB ({string.Join(", ", phases.Select((p, k) => $"{p} {phasePeak[k]:F2}"))}) (process peak {Math.Max(trainPeak, Math.Max(loadPeak, encodePeak)):F2} GiB)");
    }

    /// <summary>Resets the kernel's peak-RSS counter (VmHWM) of this process to the current RSS (Linux ≥ 4.0).</summary>
    static void ResetPeakRss()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>Peak resident set size of this process (VmHWM), in GiB; NaN where /proc is unavailable.</summary>
    public static double PeakRssGiB()
    {
        try
        {
            foreach (var l in File.ReadLines("/proc/self/status"))
                if (l.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(l.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / (1024.0 * 1024.0);
        }
        catch (IOException) { }
        return double.NaN;
    }
}
