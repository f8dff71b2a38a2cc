using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DreamBooth.Models.Common;

#pragma warning disable IDE1006 // field names are the PyTorch attribute names, so state-dict keys match diffusers

/// <summary>Sinusoidal timestep features (diffusers <c>get_timestep_embedding</c>), computed in float32.</summary>
public static class TimestepFeatures
{
    public static Tensor Sinusoidal(Tensor timesteps, int dim, bool flipSinToCos, double freqShift, double scale = 1, int maxPeriod = 10000)
    {
        int half = dim / 2;
        var exponent = torch.arange(0, half, dtype: ScalarType.Float32, device: timesteps.device) * (-Math.Log(maxPeriod));
        exponent = exponent / (half - freqShift);
        var freqs = torch.exp(exponent);
        var emb = timesteps.to(ScalarType.Float32).unsqueeze(1) * freqs.unsqueeze(0);
        if (scale != 1) emb = emb * scale;
        emb = flipSinToCos ? torch.cat([torch.cos(emb), torch.sin(emb)], -1) : torch.cat([torch.sin(emb), torch.cos(emb)], -1);
        if (dim % 2 == 1) emb = nn.functional.pad(emb, new long[] { 0, 1, 0, 0 });
        return emb;
    }
}

/// <summary>diffusers' <c>TimestepEmbedding</c>: linear_1 → act → linear_2.</summary>
public sealed class TimestepEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Linear linear_1, linear_2;
    private readonly string act;

    public TimestepEmbedding(ModelPlacement p, int inChannels, int timeEmbedDim, string act) : base("TimestepEmbedding")
    {
        linear_1 = Layers.Linear(p, inChannels, timeEmbedDim);
        linear_2 = Layers.Linear(p, timeEmbedDim, timeEmbedDim);
        this.act = act;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => linear_2.forward(Activations.Apply(act, linear_1.forward(x)));
}
