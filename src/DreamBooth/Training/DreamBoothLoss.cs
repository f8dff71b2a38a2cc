using DreamBooth.Models.Unet;
using DreamBooth.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace DreamBooth.Training;

/// <summary>The parts of one DreamBooth loss evaluation (tensors live in the caller's dispose scope).</summary>
public sealed record DreamBoothLossResult(Tensor Loss, Tensor InstanceLoss, Tensor? PriorLoss, Tensor NoisyInput, Tensor ModelPred, Tensor Target);

/// <summary>
/// The DreamBooth objective of diffusers' <c>train_dreambooth.py</c>: noise the latents at random timesteps, predict
/// with the UNet, regress on ε or v (from the scheduler config), and — with prior preservation — add
/// <c>prior_loss_weight · mse</c> on the class half of the batch (instance examples first, class examples second).
/// Min-SNR-γ (Hang et al. 2023) reweights each example by min(SNR, γ)/SNR (ε) or min(SNR, γ)/(SNR+1) (v).
/// </summary>
public static class DreamBoothLoss
{
    public static DreamBoothLossResult Compute(UNet2DConditionModel unet, NoiseSchedule schedule, Tensor latents, Tensor noise,
        Tensor timesteps, Tensor encoderHiddenStates, int instanceCount, double priorLossWeight, double? minSnrGamma = null)
    {
        long batch = latents.shape[0];
        if (instanceCount < 1 || instanceCount > batch)
            throw new ArgumentOutOfRangeException(nameof(instanceCount), $"instance count {instanceCount} must be in 1…{batch}");
        var prediction = schedule.Config.PredictionType;
        var noisy = schedule.AddNoise(latents, noise, timesteps);
        var pred = unet.Forward(noisy.to(unet.DType), timesteps, encoderHiddenStates.to(unet.DType)).to(ScalarType.Float32);
        var target = prediction switch
        {
            PredictionType.Epsilon => noise,
            PredictionType.VPrediction => schedule.GetVelocity(latents, noise, timesteps),
            PredictionType.Sample => latents,
            _ => throw new NotSupportedException($"prediction type {prediction}"),
        };
        Tensor? weights = minSnrGamma is double g ? schedule.MinSnrWeights(timesteps, g, prediction) : null;

        Tensor Mse(int from, int to)
        {
            var p = pred[from..to];
            var t = target[from..to].to(ScalarType.Float32);
            if (weights is null) return nn.functional.mse_loss(p, t);
            var perExample = (p - t).pow(2).flatten(1).mean([1L]);
            return (perExample * weights[from..to]).mean();
        }

        var instance = Mse(0, instanceCount);
        Tensor? prior = instanceCount < batch ? Mse(instanceCount, (int)batch) : null;
        var loss = prior is null ? instance : instance + priorLossWeight * prior;
        return new DreamBoothLossResult(loss, instance, prior, noisy, pred, target);
    }
}
