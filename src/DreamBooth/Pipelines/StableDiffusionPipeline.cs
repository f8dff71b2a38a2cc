using DreamBooth.Imaging;
using DreamBooth.Loading;
using DreamBooth.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Pipelines;

/// <summary>
/// Text-to-image and image-to-image with classifier-free guidance, as diffusers' StableDiffusionPipeline with
/// AUTOMATIC1111's prompt handling. Inference only: it neither prints nor saves. Stages: 1 check inputs → 2 encode the
/// prompt → 3 prepare latents → 4 denoise (one dispose scope per step, progress, cancellation) → 5 decode.
/// </summary>
public sealed class StableDiffusionPipeline
{
    public StableDiffusionPipeline(StableDiffusionModel model)
    {
        Model = model;
        Prompts = new PromptEncoder(model.Tokenizer, model.TextEncoder);
    }

    public StableDiffusionModel Model { get; }

    public PromptEncoder Prompts { get; }

    /// <summary>Replaces the UNet call (sample, timestep, context) → prediction; benchmarks wrap the bare UNet with it.</summary>
    public Func<Tensor, Tensor, Tensor, Tensor>? UnetOverride { get; set; }

    /// <summary>
    /// On the CPU, how many images of a batch are denoised at once, each on its own thread (<see cref="CpuWorkers"/>;
    /// default 1). With libtorch at 1 thread, one worker per core (<see cref="CpuWorkers.FillCores"/>) is the fast setting
    /// for small models. The images are the same whatever the number; CUDA runs the whole batch in one call anyway.
    /// </summary>
    public int ImageWorkers { get; set; } = 1;

    public GenerationResult Generate(GenerationRequest request, IProgress<GenerationProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        // 1. check inputs
        var m = Model;
        request.Validate(m.VaeScaleFactor);
        int width = request.Width ?? m.DefaultResolution;
        int height = request.Height ?? m.DefaultResolution;
        if (request.InitImage is { } init && (init.Width != width || init.Height != height))
            throw new ArgumentException($"init image is {init.Width}×{init.Height} but the request is {width}×{height}: resize or crop it first", "init-image");
        if (request.ClipSkip > m.TextEncoder.Config.NumHiddenLayers)
            throw new ArgumentException($"clip skip must be at most {m.TextEncoder.Config.NumHiddenLayers} for this text encoder (got {request.ClipSkip})", "clip-skip");
        var seeds = request.ResolveSeeds();
        int batch = seeds.Count;
        bool cfg = request.GuidanceScale > 1.0;
        using var sampler = SamplerFactory.Create(request.Sampler, m.Scheduler, new SamplerOptions { Eta = request.Eta });
        using var noise = new PerImageNoise(seeds);
        var device = m.Device;
        var dtype = m.DType;

        using var outer = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();

        // 2. encode the prompt (cond and uncond have equal chunk counts)
        Tensor cond, uncond;
        if (cfg)
        {
            (cond, uncond) = Prompts.EncodePair(request.Prompt, request.NegativePrompt, request.ClipSkip, request.PromptWeighting);
        }
        else
        {
            cond = Prompts.Encode(request.Prompt, request.ClipSkip, request.PromptWeighting);
            uncond = cond;
        }
        var context = cfg ? torch.cat([uncond.expand(batch, -1, -1), cond.expand(batch, -1, -1)], 0) : cond.expand(batch, -1, -1);
        context = context.to(dtype).to(device).contiguous();

        // 3. prepare latents
        var latentShape = new long[] { batch, m.Unet.Config.InChannels, height / m.VaeScaleFactor, width / m.VaeScaleFactor };
        using var run = request.InitImage is null ? sampler.Start(request.Steps) : sampler.StartImageToImage(request.Steps, request.Strength);
        Tensor latents;
        var first = noise.Next(latentShape, ScalarType.Float32, device);
        if (request.InitImage is { } image)
        {
            var pixels = ImageTensor.ToTensor(image).unsqueeze(0).expand(batch, -1, -1, -1).to(device);
            var encoded = m.Vae.Encode(pixels).Mean.to(ScalarType.Float32).Times(m.Vae.Config.ScalingFactor);
            latents = run.BeginIndex < run.Timesteps.Count ? run.AddNoise(encoded, first, run.BeginIndex) : encoded;
        }
        else
        {
            latents = first.Times(run.InitNoiseSigma);
        }

        // 4. denoise
        int micro = request.UnetMicroBatch ?? (device.type == DeviceType.CPU ? 1 : batch);
        int total = run.Timesteps.Count - run.BeginIndex;
        using var guidance = request.GuidanceScale.ToScalar();   // held for the whole loop (HeldScalars)
        for (int i = run.BeginIndex; i < run.Timesteps.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = torch.NewDisposeScope();
            var input = run.ScaleModelInput(latents, i);
            var t = run.TimestepTensor(i, device);
            var outputs = new Tensor[(batch + micro - 1) / micro];
            try
            {
                // micro-batches are independent: on the CPU several may run at once (ImageWorkers), each in its own scope
                CpuWorkers.For(outputs.Length, device.type == DeviceType.CPU ? ImageWorkers : 1, c =>
                {
                    using var part = torch.NewDisposeScope();
                    int s = c * micro, e = Math.Min(batch, s + micro);
                    var x = input[s..e];
                    var modelInput = (cfg ? torch.cat([x, x], 0) : x).to(dtype);
                    var ctx = cfg ? torch.cat([context[s..e], context[(batch + s)..(batch + e)]], 0) : context[s..e];
                    var o = (UnetOverride ?? m.Unet.Forward)(modelInput, t, ctx).to(ScalarType.Float32);
                    if (cfg)
                    {
                        var parts = o.chunk(2, 0);
                        o = parts[0].Plus((parts[1] - parts[0]).mul(guidance));
                        if (request.GuidanceRescale > 0) o = RescaleGuidance(o, parts[1], request.GuidanceRescale);
                    }
                    outputs[c] = part.Detach(o);
                }, cancellationToken);
            }
            finally
            {
                scope.Attach(outputs.Where(o => o is not null));
            }
            var output = outputs.Length == 1 ? outputs[0] : torch.cat(outputs, 0);
            var next = run.Step(output, i, latents, noise).PrevSample;
            latents.Dispose();
            latents = next.MoveToOuterDisposeScope();
            if (progress is not null)
            {
                int done = i - run.BeginIndex + 1;
                var preview = request.PreviewEvery > 0 && (done % request.PreviewEvery == 0 || done == total)
                    ? ImageTensor.LatentPreviewImages(latents.cpu())[0] : null;
                progress.Report(new GenerationProgress(done, total, run.Timesteps[i], preview));
            }
        }

        // 5. decode, one image at a time (bounded memory; identical results whatever the batch size)
        var images = new List<Tensor>();
        for (int b = 0; b < batch; b++)
        {
            using var scope = torch.NewDisposeScope();
            var z = latents[b..(b + 1)].Over(m.Vae.Config.ScalingFactor);
            var img = m.Vae.Decode(z.to(m.Vae.DType)).to(ScalarType.Float32).clamp(-1, 1).cpu();
            images.Add(img.MoveToOuterDisposeScope());
        }
        var result = torch.cat(images, 0);
        var parameters = seeds.Select(s => new GenerationParameters
        {
            Prompt = request.Prompt,
            NegativePrompt = request.NegativePrompt,
            Steps = request.Steps,
            Sampler = SamplerFactory.DisplayName(request.Sampler),
            CfgScale = request.GuidanceScale,
            Seed = s,
            Width = width,
            Height = height,
            ModelName = m.Name,
            ClipSkip = request.ClipSkip > 1 ? request.ClipSkip : null,
            DenoisingStrength = request.InitImage is null ? null : request.Strength,
            Extra = request.GuidanceRescale > 0 ? [new("CFG Rescale phi", request.GuidanceRescale.ToString(System.Globalization.CultureInfo.InvariantCulture))] : [],
        }).ToList();
        return new GenerationResult(result.MoveToOuterDisposeScope(), seeds, parameters);
    }

    /// <summary>
    /// diffusers' <c>rescale_noise_cfg</c>: the guided output scaled to the per-image standard deviation of the
    /// conditional output, mixed with the unscaled one by <paramref name="phi"/>.
    /// </summary>
    internal static Tensor RescaleGuidance(Tensor guided, Tensor conditional, double phi)
    {
        var dims = Enumerable.Range(1, (int)guided.dim() - 1).Select(d => (long)d).ToArray();
        var rescaled = guided * (conditional.std(dims, keepdim: true) / guided.std(dims, keepdim: true));
        return HeldScalars.Lin(phi, rescaled, 1 - phi, guided);
    }
}
